#include "worker/plan_derivation.h"

#include <string>
#include <vector>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plan/split_planner.h"
#include "splitd/v1/agent_service.pb.h"

namespace splitd::worker {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

// TP2 PP2 DP2 over 8 ranks, dims innermost first.
v1::Topology Tp2Pp2Dp2() {
  v1::Topology topology;
  topology.set_cluster("llama");
  for (const char* name : {"tp", "pp", "dp"}) {
    v1::Dim* dim = topology.add_dims();
    dim->set_name(name);
    dim->set_size(2);
  }
  return topology;
}

void AddGenerated(v1::Topology* topology, const std::string& name, const std::string& dim,
                  const std::string& backend = "") {
  v1::GroupSpec* group = topology->add_groups();
  group->set_name(name);
  group->add_dims(dim);
  group->set_backend(backend);
}

// What the daemon would send for `topology` at `epoch` to `rank`.
v1::WatchPlanResponse Message(const v1::Topology& topology, int64_t rank, int64_t epoch = 3) {
  absl::StatusOr<plan::SplitPlan> plan = plan::SplitPlanner::Build(topology, epoch);
  EXPECT_THAT(plan, IsOk());
  v1::WatchPlanResponse message;
  message.set_rank(rank);
  v1::Plan* out = message.mutable_plan();
  out->set_cluster(plan->cluster);
  out->set_epoch(plan->epoch);
  out->set_fingerprint(plan->fingerprint);
  out->set_world_size(plan->world_size);
  out->set_method(plan->method);
  *out->mutable_topology() = plan->topology;
  return message;
}

TEST(PlanDerivationTest, Rank5OfTp2Pp2Dp2GetsItsThreeGroups) {
  DerivationOptions options;
  options.host = "10.0.0.5";
  options.timeout = absl::Seconds(7);
  absl::StatusOr<DerivedPlan> derived = DerivePlan(Message(Tp2Pp2Dp2(), 5), options);
  ASSERT_THAT(derived, IsOk());
  EXPECT_EQ(derived->rank, 5);
  EXPECT_EQ(derived->world_size, 8);
  EXPECT_EQ(derived->epoch, 3);
  EXPECT_EQ(derived->method, "split");

  ASSERT_THAT(derived->worlds, SizeIs(1));
  const BackendWorld& world = derived->worlds[0];
  EXPECT_EQ(world.backend, "cpu:gloo");
  EXPECT_EQ(world.spec.cluster, "llama");
  EXPECT_EQ(world.spec.rank, 5);
  EXPECT_EQ(world.spec.world_size, 8);
  EXPECT_EQ(world.spec.epoch, 3);
  EXPECT_EQ(world.spec.host, "10.0.0.5");
  EXPECT_EQ(world.spec.timeout, absl::Seconds(7));
  EXPECT_EQ(world.spec.allreduce_elements, 1024);
  EXPECT_EQ(world.spec.bandwidth_bytes, 0);
  ASSERT_THAT(world.spec.groups, SizeIs(3));

  const GroupAssignment& tp = world.spec.groups[0];
  EXPECT_EQ(tp.kind, "tp");
  EXPECT_EQ(tp.kind_index, 0);
  EXPECT_EQ(tp.group_index, 2);
  EXPECT_THAT(tp.members, ElementsAre(4, 5));
  EXPECT_EQ(tp.local_rank, 1);

  const GroupAssignment& pp = world.spec.groups[1];
  EXPECT_EQ(pp.kind, "pp");
  EXPECT_EQ(pp.kind_index, 1);
  EXPECT_EQ(pp.group_index, 3);  // pp groups [0,2] [1,3] [4,6] [5,7]
  EXPECT_THAT(pp.members, ElementsAre(5, 7));
  EXPECT_EQ(pp.local_rank, 0);

  const GroupAssignment& dp = world.spec.groups[2];
  EXPECT_EQ(dp.kind, "dp");
  EXPECT_EQ(dp.kind_index, 2);
  EXPECT_EQ(dp.group_index, 1);  // dp groups [0,4] [1,5] [2,6] [3,7]
  EXPECT_THAT(dp.members, ElementsAre(1, 5));
  EXPECT_EQ(dp.local_rank, 1);

  ASSERT_THAT(derived->groups, SizeIs(3));
  EXPECT_EQ(derived->groups[0].assignment.kind, "tp");
  EXPECT_EQ(derived->groups[0].backend, "cpu:gloo");
}

TEST(PlanDerivationTest, ValidationSettingsReachTheWorldSpec) {
  v1::Topology topology = Tp2Pp2Dp2();
  topology.mutable_validation()->set_allreduce_elements(64);
  topology.mutable_validation()->set_bandwidth_bytes(1 << 20);
  absl::StatusOr<DerivedPlan> derived = DerivePlan(Message(topology, 0), DerivationOptions());
  ASSERT_THAT(derived, IsOk());
  ASSERT_THAT(derived->worlds, SizeIs(1));
  EXPECT_EQ(derived->worlds[0].spec.allreduce_elements, 64);
  EXPECT_EQ(derived->worlds[0].spec.bandwidth_bytes, 1 << 20);
}

TEST(PlanDerivationTest, RankInNoExplicitListGetsNoAssignmentButStillJoinsTheWorld) {
  v1::Topology topology = Tp2Pp2Dp2();
  AddGenerated(&topology, "tp", "tp");
  v1::GroupSpec* custom = topology.add_groups();
  custom->set_name("custom");
  custom->add_split_ranks()->add_ranks(0);
  custom->mutable_split_ranks(0)->add_ranks(3);
  custom->add_split_ranks()->add_ranks(2);
  custom->mutable_split_ranks(1)->add_ranks(1);

  absl::StatusOr<DerivedPlan> outside = DerivePlan(Message(topology, 6), DerivationOptions());
  ASSERT_THAT(outside, IsOk());
  ASSERT_THAT(outside->worlds, SizeIs(1));
  ASSERT_THAT(outside->worlds[0].spec.groups, SizeIs(1));
  EXPECT_EQ(outside->worlds[0].spec.groups[0].kind, "tp");
  ASSERT_THAT(outside->groups, SizeIs(1));

  // Explicit lists keep their order: rank 1 is second in [2, 1], the list sorted second.
  absl::StatusOr<DerivedPlan> inside = DerivePlan(Message(topology, 1), DerivationOptions());
  ASSERT_THAT(inside, IsOk());
  ASSERT_THAT(inside->worlds[0].spec.groups, SizeIs(2));
  const GroupAssignment& listed = inside->worlds[0].spec.groups[1];
  EXPECT_EQ(listed.kind, "custom");
  EXPECT_EQ(listed.kind_index, 1);
  EXPECT_EQ(listed.group_index, 1);
  EXPECT_THAT(listed.members, ElementsAre(2, 1));
  EXPECT_EQ(listed.local_rank, 1);
}

TEST(PlanDerivationTest, FingerprintMismatchNamesRankAndBothDigests) {
  v1::WatchPlanResponse message = Message(Tp2Pp2Dp2(), 5);
  const std::string derived = message.plan().fingerprint();
  const std::string sent(64, 'a');
  message.mutable_plan()->set_fingerprint(sent);
  std::string reported;
  EXPECT_THAT(DerivePlan(message, DerivationOptions(), &reported),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       ::testing::AllOf(HasSubstr("rank 5"), HasSubstr(derived), HasSubstr(sent))));
  EXPECT_EQ(reported, derived);
}

TEST(PlanDerivationTest, InjectedFaultCorruptsTheDerivedFingerprint) {
  const v1::WatchPlanResponse message = Message(Tp2Pp2Dp2(), 2);
  std::string reported;
  EXPECT_THAT(
      DerivePlanWithCorruptedFingerprint(message, DerivationOptions(), &reported),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               ::testing::AllOf(HasSubstr("rank 2"), HasSubstr(message.plan().fingerprint()))));
  EXPECT_NE(reported, message.plan().fingerprint());
  EXPECT_THAT(reported, SizeIs(64));
}

TEST(PlanDerivationTest, MixedBackendsGiveOneWorldPerPart) {
  v1::Topology topology = Tp2Pp2Dp2();
  AddGenerated(&topology, "tp", "tp", "cpu:gloo,cuda:nccl");
  AddGenerated(&topology, "pp", "pp", "cuda:nccl");
  AddGenerated(&topology, "dp", "dp", "cpu:gloo");
  absl::StatusOr<DerivedPlan> derived = DerivePlan(Message(topology, 5), DerivationOptions());
  ASSERT_THAT(derived, IsOk());
  ASSERT_THAT(derived->worlds, SizeIs(2));
  EXPECT_EQ(derived->worlds[0].backend, "cpu:gloo");
  EXPECT_EQ(derived->worlds[1].backend, "cuda:nccl");
  std::vector<std::string> gloo_kinds, nccl_kinds;
  for (const GroupAssignment& g : derived->worlds[0].spec.groups) gloo_kinds.push_back(g.kind);
  for (const GroupAssignment& g : derived->worlds[1].spec.groups) nccl_kinds.push_back(g.kind);
  EXPECT_THAT(gloo_kinds, ElementsAre("tp", "dp"));
  EXPECT_THAT(nccl_kinds, ElementsAre("tp", "pp"));
  ASSERT_THAT(derived->groups, SizeIs(3));
  EXPECT_EQ(derived->groups[0].backend, "cpu:gloo,cuda:nccl");
}

TEST(PlanDerivationTest, BackendUsedOnlyByAKindTheRankIsNotInIsStillBootstrapped) {
  v1::Topology topology = Tp2Pp2Dp2();
  AddGenerated(&topology, "tp", "tp");
  v1::GroupSpec* custom = topology.add_groups();
  custom->set_name("custom");
  custom->set_backend("cuda:nccl");
  custom->add_split_ranks()->add_ranks(0);
  custom->mutable_split_ranks(0)->add_ranks(1);
  absl::StatusOr<DerivedPlan> derived = DerivePlan(Message(topology, 7), DerivationOptions());
  ASSERT_THAT(derived, IsOk());
  ASSERT_THAT(derived->worlds, SizeIs(2));
  EXPECT_EQ(derived->worlds[1].backend, "cuda:nccl");
  EXPECT_THAT(derived->worlds[1].spec.groups, SizeIs(0));
}

TEST(PlanDerivationTest, RankOutsideTheWorldIsRefused) {
  EXPECT_THAT(DerivePlan(Message(Tp2Pp2Dp2(), 8), DerivationOptions()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank must be in [0, 8)")));
}

TEST(PlanDerivationTest, BackendPartsSplitOnCommas) {
  EXPECT_THAT(BackendParts("cpu:gloo"), ElementsAre("cpu:gloo"));
  EXPECT_THAT(BackendParts("cpu:gloo, cuda:nccl"), ElementsAre("cpu:gloo", "cuda:nccl"));
  EXPECT_THAT(BackendParts(""), SizeIs(0));
}

}  // namespace
}  // namespace splitd::worker
