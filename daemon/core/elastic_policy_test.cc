#include "daemon/core/elastic_policy.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plan/split_planner.h"
#include "plan/topology_validator.h"

namespace splitd::core {
namespace {

using Action = PolicyDecision::Action;
using ::splitd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'000'000);

// TP2 x DP4 (world 8): dp replica r holds ranks 2r and 2r+1.
v1::Topology Topology(int64_t tp, int64_t dp, int64_t min = 0, int64_t max = 0) {
  v1::Topology topology;
  topology.set_cluster("job");
  v1::Dim* d = topology.add_dims();
  d->set_name("tp");
  d->set_size(tp);
  d = topology.add_dims();
  d->set_name("dp");
  d->set_size(dp);
  topology.mutable_elastic()->set_min(min);
  topology.mutable_elastic()->set_max(max);
  absl::StatusOr<v1::Topology> normalized = plan::TopologyValidator::Normalize(topology);
  EXPECT_TRUE(normalized.ok()) << normalized.status();
  return *normalized;
}

PolicyInput Input(int64_t tp, int64_t dp, int64_t min = 0, int64_t max = 0) {
  PolicyInput input;
  input.declared = Topology(tp, dp, min, max);
  input.current = input.declared;
  for (int64_t rank = 0; rank < tp * dp; ++rank) {
    input.assignment.push_back(absl::StrCat("m-", rank));
    input.nodes.push_back(absl::StrCat("node-", rank / 2));
  }
  return input;
}

SpareMember Spare(int order) {
  return SpareMember{absl::StrCat("s-", order), absl::StrCat("spare-node-", order), 0, order};
}

int64_t DimSize(const v1::Topology& topology, const std::string& name) {
  for (const v1::Dim& dim : topology.dims()) {
    if (dim.name() == name) return dim.size();
  }
  return -1;
}

TEST(ElasticPolicyTest, NothingToDoWhenEveryoneIsAlive) {
  EXPECT_EQ(ElasticPolicy::Decide(Input(2, 4), kNow).action, Action::kNone);
  PolicyInput unassigned = Input(2, 4);
  unassigned.assignment.clear();
  unassigned.lost.insert("m-3");
  EXPECT_EQ(ElasticPolicy::Decide(unassigned, kNow).action, Action::kNone);
}

TEST(ElasticPolicyTest, ADegradedClusterWithEveryMemberBackReformsTheSameLayout) {
  PolicyInput input = Input(2, 4);
  input.epoch = 3;
  input.degraded = true;
  const PolicyDecision decision = ElasticPolicy::Decide(input, kNow);
  ASSERT_EQ(decision.action, Action::kNewEpoch);
  EXPECT_EQ(decision.cause, v1::EPOCH_CAUSE_MEMBERS_RETURNED);
  EXPECT_EQ(decision.reason, "every rank's member is alive again: re-forming world 8");
  EXPECT_EQ(decision.assignment, input.assignment);
  ASSERT_TRUE(decision.plan.has_value());
  EXPECT_EQ(decision.plan->epoch, 4);
  EXPECT_EQ(decision.plan->world_size, 8);
}

TEST(ElasticPolicyTest, AFailedEpochIsRetriedWhileRetriesAreLeftAndEveryoneIsAlive) {
  PolicyInput input = Input(2, 4);
  input.declared.mutable_elastic()->set_retries(2);
  input.epoch = 5;
  const PolicyDecision retry = ElasticPolicy::Retry(input, 1, "rank 3: timeout", kNow);
  ASSERT_EQ(retry.action, Action::kNewEpoch);
  EXPECT_EQ(retry.cause, v1::EPOCH_CAUSE_RETRIED);
  EXPECT_EQ(retry.reason,
            "epoch 5 FAILED (rank 3: timeout): retry 2 of 2, the same layout at world 8");
  EXPECT_EQ(retry.assignment, input.assignment);
  ASSERT_TRUE(retry.plan.has_value());
  EXPECT_EQ(retry.plan->epoch, 6);
  // Used up, or a rank without its member (Decide's), or retries off: none.
  EXPECT_EQ(ElasticPolicy::Retry(input, 2, "x", kNow).action, Action::kNone);
  PolicyInput lost = input;
  lost.lost.insert("m-3");
  EXPECT_EQ(ElasticPolicy::Retry(lost, 0, "x", kNow).action, Action::kNone);
  PolicyInput lapsed = input;
  lapsed.alive_until["m-4"] = kNow - absl::Seconds(1);
  EXPECT_EQ(ElasticPolicy::Retry(lapsed, 0, "x", kNow).action, Action::kNone);
  EXPECT_EQ(ElasticPolicy::Retry(Input(2, 4), 0, "x", kNow).action, Action::kNone);
}

TEST(ElasticPolicyTest, ANewEpochComesPlanned) {
  PolicyInput input = Input(2, 4, /*min=*/2);
  input.epoch = 7;
  input.lost.insert("m-5");
  const PolicyDecision decision = ElasticPolicy::Decide(input, kNow);
  ASSERT_EQ(decision.action, Action::kNewEpoch);
  ASSERT_TRUE(decision.plan.has_value());
  EXPECT_EQ(decision.plan->epoch, 8);
  EXPECT_EQ(decision.plan->world_size, 6);
  EXPECT_EQ(decision.plan->topology.SerializeAsString(), decision.topology.SerializeAsString());
}

TEST(ElasticPolicyTest, LostMemberDropsItsReplicaAndKeepsOrder) {
  PolicyInput input = Input(2, 4, /*min=*/2);
  input.lost.insert("m-5");  // replica 2 holds ranks 4 and 5
  const PolicyDecision decision = ElasticPolicy::Decide(input, kNow);
  ASSERT_EQ(decision.action, Action::kNewEpoch);
  EXPECT_EQ(DimSize(decision.topology, "dp"), 3);
  EXPECT_EQ(decision.topology.world_size(), 6);
  EXPECT_THAT(decision.assignment, ElementsAre("m-0", "m-1", "m-2", "m-3", "m-6", "m-7"));
  EXPECT_THAT(decision.previous_ranks, ElementsAre(0, 1, 2, 3, 6, 7));
  EXPECT_THAT(decision.reason, HasSubstr("rank 5 (m-5) lost"));
  EXPECT_EQ(decision.cause, v1::EPOCH_CAUSE_MEMBER_LOST);
  EXPECT_THAT(decision.reason, HasSubstr("dp 4 -> 3, world 8 -> 6; 1 member(s) become spares"));
  // The declared topology is the target and stays as it was.
  EXPECT_EQ(DimSize(decision.topology, "tp"), 2);
  EXPECT_EQ(decision.topology.elastic().max(), 4);
}

TEST(ElasticPolicyTest, ReplicaDimInTheMiddleKeepsCoordinates) {
  // dims tp2, dp3, pp2: rank = tp + 2 dp + 6 pp. Losing rank 9 (tp1 dp1 pp1) drops dp 1.
  v1::Topology topology;
  topology.set_cluster("job");
  for (auto [name, size] : {std::pair<const char*, int64_t>{"tp", 2}, {"dp", 3}, {"pp", 2}}) {
    v1::Dim* dim = topology.add_dims();
    dim->set_name(name);
    dim->set_size(size);
  }
  PolicyInput input;
  input.declared = *plan::TopologyValidator::Normalize(topology);
  input.current = input.declared;
  for (int rank = 0; rank < 12; ++rank) input.assignment.push_back(absl::StrCat("m-", rank));
  input.nodes.assign(12, "n");
  input.lost.insert("m-9");
  const PolicyDecision decision = ElasticPolicy::Decide(input, kNow);
  ASSERT_EQ(decision.action, Action::kNewEpoch);
  EXPECT_THAT(decision.previous_ranks, ElementsAre(0, 1, 4, 5, 6, 7, 10, 11));
  EXPECT_THAT(decision.assignment,
              ElementsAre("m-0", "m-1", "m-4", "m-5", "m-6", "m-7", "m-10", "m-11"));
}

TEST(ElasticPolicyTest, SparesTakeLostRanksBeforeAnyReplicaIsDropped) {
  PolicyInput input = Input(2, 4);
  input.lost = {"m-1", "m-6"};
  input.spares = {Spare(0), Spare(1), Spare(2)};
  const PolicyDecision decision = ElasticPolicy::Decide(input, kNow);
  ASSERT_EQ(decision.action, Action::kNewEpoch);
  EXPECT_EQ(decision.topology.world_size(), 8);
  EXPECT_THAT(decision.assignment,
              ElementsAre("m-0", "s-0", "m-2", "m-3", "m-4", "m-5", "s-1", "m-7"));
  EXPECT_TRUE(decision.previous_ranks.empty());
  EXPECT_THAT(decision.reason, HasSubstr("2 spare(s) take the rank(s) (s-0, s-1)"));
  EXPECT_EQ(decision.cause, v1::EPOCH_CAUSE_MEMBER_LOST);
}

TEST(ElasticPolicyTest, AnExcludedRankAloneIsItsCause) {
  PolicyInput input = Input(2, 4);
  input.excluded = {"m-2"};
  input.spares = {Spare(0)};
  const PolicyDecision excluded = ElasticPolicy::Decide(input, kNow);
  ASSERT_EQ(excluded.action, Action::kNewEpoch);
  EXPECT_EQ(excluded.cause, v1::EPOCH_CAUSE_MEMBER_EXCLUDED);
  input.lost = {"m-5"};
  input.spares = {Spare(0), Spare(1)};
  EXPECT_EQ(ElasticPolicy::Decide(input, kNow).cause, v1::EPOCH_CAUSE_MEMBER_LOST);
}

TEST(ElasticPolicyTest, BelowTheMinimumIsDegraded) {
  PolicyInput input = Input(2, 2, /*min=*/2);
  input.lost.insert("m-2");
  const PolicyDecision decision = ElasticPolicy::Decide(input, kNow);
  EXPECT_EQ(decision.action, Action::kDegraded);
  EXPECT_THAT(decision.reason,
              HasSubstr("would leave dp=1, below the minimum 2: waiting for 1 member(s)"));
}

TEST(ElasticPolicyTest, NoReplicaDimMeansDegradedWithoutSpares) {
  v1::Topology topology;
  topology.set_cluster("job");
  v1::Dim* dim = topology.add_dims();
  dim->set_name("tp");
  dim->set_size(4);
  PolicyInput input;
  input.declared = *plan::TopologyValidator::Normalize(topology);
  input.current = input.declared;
  input.assignment = {"a", "b", "c", "d"};
  input.nodes.assign(4, "n");
  input.lost.insert("c");
  EXPECT_EQ(ElasticPolicy::Decide(input, kNow).action, Action::kDegraded);
}

TEST(ElasticPolicyTest, SparesScaleTheReplicaDimBackUpToMax) {
  PolicyInput input = Input(2, 3, /*min=*/1, /*max=*/4);
  input.declared = Topology(2, 4, 1, 4);
  input.spares = {Spare(0)};
  EXPECT_EQ(ElasticPolicy::Decide(input, kNow).action, Action::kNone);  // half a replica
  input.spares = {Spare(0), Spare(1), Spare(2)};
  const PolicyDecision decision = ElasticPolicy::Decide(input, kNow);
  ASSERT_EQ(decision.action, Action::kNewEpoch);
  EXPECT_EQ(DimSize(decision.topology, "dp"), 4);
  EXPECT_THAT(decision.assignment,
              ElementsAre("m-0", "m-1", "m-2", "m-3", "m-4", "m-5", "s-0", "s-1"));
  EXPECT_THAT(decision.reason, HasSubstr("added 1 dp replica(s): dp 3 -> 4, world 6 -> 8"));
  EXPECT_EQ(decision.cause, v1::EPOCH_CAUSE_SCALED_UP);
}

TEST(ElasticPolicyTest, ReconfigureDropsReplicasAndPinsTheTarget) {
  PolicyInput input = Input(2, 4);
  input.spares = {Spare(0), Spare(1)};
  v1::Change change;
  (*change.mutable_set_dims())["dp"] = 3;
  v1::Topology declared;
  absl::StatusOr<PolicyDecision> decision =
      ElasticPolicy::Reconfigure(input, change, &declared, kNow);
  ASSERT_TRUE(decision.ok()) << decision.status();
  EXPECT_EQ(decision->action, Action::kNewEpoch);
  EXPECT_EQ(decision->cause, v1::EPOCH_CAUSE_RECONFIGURED);
  EXPECT_EQ(DimSize(decision->topology, "dp"), 3);
  EXPECT_THAT(decision->previous_ranks, ElementsAre(0, 1, 2, 3, 4, 5));
  EXPECT_EQ(DimSize(declared, "dp"), 3);
  EXPECT_EQ(declared.elastic().max(), 3);
}

TEST(ElasticPolicyTest, ReconfigureExcludesRanksAndNodes) {
  PolicyInput input = Input(2, 4);
  v1::Change change;
  change.add_exclude_ranks(2);
  v1::Topology declared;
  absl::StatusOr<PolicyDecision> by_rank =
      ElasticPolicy::Reconfigure(input, change, &declared, kNow);
  ASSERT_TRUE(by_rank.ok()) << by_rank.status();
  EXPECT_THAT(by_rank->assignment, ElementsAre("m-0", "m-1", "m-4", "m-5", "m-6", "m-7"));
  EXPECT_THAT(by_rank->reason, HasSubstr("rank 2 (m-2) excluded"));

  change.Clear();
  change.add_exclude_nodes("node-3");  // ranks 6 and 7
  absl::StatusOr<PolicyDecision> by_node =
      ElasticPolicy::Reconfigure(input, change, &declared, kNow);
  ASSERT_TRUE(by_node.ok()) << by_node.status();
  EXPECT_THAT(by_node->previous_ranks, ElementsAre(0, 1, 2, 3, 4, 5));
}

TEST(ElasticPolicyTest, ReconfigureGrowsOnlyAsFarAsSparesAllow) {
  PolicyInput input = Input(2, 2);
  input.spares = {Spare(0), Spare(1)};
  v1::Change change;
  (*change.mutable_set_dims())["dp"] = 4;
  v1::Topology declared;
  absl::StatusOr<PolicyDecision> decision =
      ElasticPolicy::Reconfigure(input, change, &declared, kNow);
  ASSERT_TRUE(decision.ok()) << decision.status();
  EXPECT_EQ(decision->action, Action::kNewEpoch);
  EXPECT_EQ(DimSize(decision->topology, "dp"), 3);
  EXPECT_THAT(decision->reason, HasSubstr("dp target 4: stays at 3 until 2 more member(s) join"));
  EXPECT_EQ(declared.elastic().max(), 4);

  input.spares.clear();
  decision = ElasticPolicy::Reconfigure(input, change, &declared, kNow);
  ASSERT_TRUE(decision.ok()) << decision.status();
  EXPECT_EQ(decision->action, Action::kNone);
}

TEST(ElasticPolicyTest, ReconfigureMethodAndGeneralRelayout) {
  PolicyInput input = Input(2, 4);
  v1::Change change;
  change.set_method("init");
  v1::Topology declared;
  absl::StatusOr<PolicyDecision> method =
      ElasticPolicy::Reconfigure(input, change, &declared, kNow);
  ASSERT_TRUE(method.ok()) << method.status();
  EXPECT_EQ(method->topology.method(), "init");
  EXPECT_EQ(method->assignment, input.assignment);

  change.Clear();
  (*change.mutable_set_dims())["tp"] = 4;
  EXPECT_THAT(ElasticPolicy::Reconfigure(input, change, &declared, kNow),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("needs 16 members; 8")));
  (*change.mutable_set_dims())["tp"] = 1;
  absl::StatusOr<PolicyDecision> smaller =
      ElasticPolicy::Reconfigure(input, change, &declared, kNow);
  ASSERT_TRUE(smaller.ok()) << smaller.status();
  EXPECT_EQ(smaller->topology.world_size(), 4);
  EXPECT_TRUE(smaller->previous_ranks.empty());
}

TEST(ElasticPolicyTest, ReconfigureRefusesBadChangesNamingTheField) {
  PolicyInput input = Input(2, 2, /*min=*/2);
  v1::Topology declared;
  v1::Change change;
  EXPECT_THAT(ElasticPolicy::Reconfigure(input, change, &declared, kNow),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nothing to change")));
  (*change.mutable_set_dims())["ep"] = 2;
  EXPECT_THAT(
      ElasticPolicy::Reconfigure(input, change, &declared, kNow),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("change.set_dims: unknown dim")));
  change.Clear();
  (*change.mutable_set_dims())["dp"] = 0;
  EXPECT_THAT(ElasticPolicy::Reconfigure(input, change, &declared, kNow),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("change.set_dims[\"dp\"]")));
  change.Clear();
  change.add_exclude_ranks(4);
  EXPECT_THAT(
      ElasticPolicy::Reconfigure(input, change, &declared, kNow),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("change.exclude_ranks[0] = 4")));
  change.Clear();
  change.add_exclude_nodes("nowhere");
  EXPECT_THAT(ElasticPolicy::Reconfigure(input, change, &declared, kNow),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("change.exclude_nodes[0]")));
  change.Clear();
  change.add_exclude_ranks(0);  // dp would drop to 1 < min 2
  EXPECT_THAT(ElasticPolicy::Reconfigure(input, change, &declared, kNow),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("below the minimum 2")));
  change.Clear();
  change.set_method("shuffle");
  EXPECT_THAT(ElasticPolicy::Reconfigure(input, change, &declared, kNow),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("change.method")));
}

TEST(ElasticPolicyTest, ValidatorFillsAndChecksElasticDefaults) {
  const v1::Topology topology = Topology(2, 4);
  EXPECT_EQ(topology.elastic().replica_dim(), "dp");
  EXPECT_EQ(topology.elastic().min(), 1);
  EXPECT_EQ(topology.elastic().max(), 4);
  EXPECT_EQ(topology.elastic().heartbeat_interval_ms(), 2000);
  EXPECT_EQ(topology.elastic().lease_timeout_ms(), 10000);
  v1::Topology bad = topology;
  bad.mutable_elastic()->set_min(5);
  EXPECT_THAT(plan::TopologyValidator::Normalize(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("elastic.min")));
  bad = topology;
  bad.mutable_elastic()->set_replica_dim("ep");
  EXPECT_THAT(plan::TopologyValidator::Normalize(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("elastic.replica_dim")));
  bad = topology;
  bad.mutable_elastic()->set_lease_timeout_ms(100);
  EXPECT_THAT(plan::TopologyValidator::Normalize(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("elastic.lease_timeout_ms")));
}

TEST(ElasticPolicyTest, DiffCountsKeptRemovedAddedGroupsAndMoves) {
  PolicyInput input = Input(2, 4, /*min=*/2);
  input.lost.insert("m-5");
  const PolicyDecision decision = ElasticPolicy::Decide(input, kNow);
  absl::StatusOr<plan::SplitPlan> from = plan::SplitPlanner::Build(input.current, 1);
  absl::StatusOr<plan::SplitPlan> to = plan::SplitPlanner::Build(decision.topology, 2);
  ASSERT_TRUE(from.ok() && to.ok());
  const v1::PlanDiff diff =
      ElasticPolicy::Diff({&*from, input.assignment}, {&*to, decision.assignment});
  EXPECT_EQ(diff.from_world_size(), 8);
  EXPECT_EQ(diff.to_world_size(), 6);
  ASSERT_EQ(diff.kinds_size(), 2);
  EXPECT_EQ(diff.kinds(0).kind(), "tp");  // [m-4 m-5] removed, the other three kept
  EXPECT_EQ(diff.kinds(0).kept(), 3);
  EXPECT_EQ(diff.kinds(0).removed(), 1);
  EXPECT_EQ(diff.kinds(0).added(), 0);
  EXPECT_EQ(diff.kinds(1).kind(), "dp");  // both dp groups lose a member: new groups
  EXPECT_EQ(diff.kinds(1).kept(), 0);
  EXPECT_EQ(diff.kinds(1).removed(), 2);
  EXPECT_EQ(diff.kinds(1).added(), 2);
  // m-4, m-5 leave; m-6, m-7 move to ranks 4, 5.
  ASSERT_EQ(diff.moves_size(), 4);
  EXPECT_EQ(diff.moves(0).member_id(), "m-4");
  EXPECT_EQ(diff.moves(0).to_rank(), -1);
  EXPECT_EQ(diff.moves(2).member_id(), "m-6");
  EXPECT_EQ(diff.moves(2).from_rank(), 6);
  EXPECT_EQ(diff.moves(2).to_rank(), 4);
}

TEST(ElasticPolicyTest, AMemberPastItsLastAliveInstantIsLostAtTheDecision) {
  PolicyInput input = Input(2, 4, /*min=*/2);
  for (const std::string& id : input.assignment) input.alive_until[id] = kNow + absl::Seconds(5);
  input.alive_until["m-5"] = kNow - absl::Milliseconds(1);  // its lease ran out just now
  input.spares = {Spare(0)};
  input.alive_until["s-0"] = kNow + absl::Seconds(3);
  const PolicyDecision decision = ElasticPolicy::Decide(input, kNow);
  ASSERT_EQ(decision.action, Action::kNewEpoch);
  // The spare takes the rank: same layout, m-5 replaced.
  EXPECT_EQ(decision.assignment[5], "s-0");
  EXPECT_EQ(decision.cause, v1::EPOCH_CAUSE_MEMBER_LOST);

  // At its last alive instant it is still alive: nothing to decide.
  EXPECT_EQ(ElasticPolicy::Decide(input, kNow - absl::Milliseconds(1)).action, Action::kNone);
}

TEST(ElasticPolicyTest, ALapsedSpareTakesNoRank) {
  PolicyInput input = Input(2, 4, /*min=*/2);
  input.lost.insert("m-5");
  input.spares = {Spare(0)};
  input.alive_until["s-0"] = kNow - absl::Seconds(1);
  const PolicyDecision decision = ElasticPolicy::Decide(input, kNow);
  ASSERT_EQ(decision.action, Action::kNewEpoch);
  // Without a live spare the replica that held rank 5 is dropped.
  EXPECT_EQ(DimSize(decision.topology, "dp"), 3);
  EXPECT_EQ(decision.assignment.size(), 6u);
}

TEST(ElasticPolicyTest, ReconfigureCountsLapsedMembersAsLost) {
  PolicyInput input = Input(2, 4, /*min=*/1, /*max=*/4);
  input.alive_until["m-0"] = kNow - absl::Seconds(1);
  v1::Change change;
  (*change.mutable_set_dims())["dp"] = 3;
  v1::Topology declared;
  absl::StatusOr<PolicyDecision> lapsed =
      ElasticPolicy::Reconfigure(input, change, &declared, kNow);
  ASSERT_TRUE(lapsed.ok()) << lapsed.status();
  EXPECT_EQ(lapsed->assignment.size(), 6u);
  EXPECT_THAT(lapsed->assignment, ::testing::Not(::testing::Contains("m-0")));
  absl::StatusOr<PolicyDecision> alive =
      ElasticPolicy::Reconfigure(input, change, &declared, kNow - absl::Seconds(2));
  ASSERT_TRUE(alive.ok()) << alive.status();
  EXPECT_THAT(alive->assignment, ::testing::Contains("m-0"));
}

// An Occurrence of assigned ranks with `set` applied.
template <typename Set>
bool DueWhenAssigned(Set set) {
  Occurrence occurrence;
  occurrence.assigned = true;
  set(occurrence);
  return ElasticPolicy::DecisionDue(occurrence);
}

TEST(ElasticPolicyTest, ADecisionIsDueOnceAssignedWhenMembershipMoves) {
  Occurrence unassigned;
  EXPECT_FALSE(ElasticPolicy::DecisionDue(unassigned));
  unassigned.members_lost = 2;
  unassigned.spare_joined = true;
  EXPECT_FALSE(ElasticPolicy::DecisionDue(unassigned));

  EXPECT_FALSE(DueWhenAssigned([](Occurrence&) {}));
  EXPECT_TRUE(DueWhenAssigned([](Occurrence& o) { o.members_lost = 1; }));
  EXPECT_TRUE(DueWhenAssigned([](Occurrence& o) { o.spare_joined = true; }));
  EXPECT_TRUE(DueWhenAssigned([](Occurrence& o) { o.member_returned = true; }));
  EXPECT_TRUE(DueWhenAssigned([](Occurrence& o) { o.rank_missing = true; }));
  // A DEGRADED cluster has its decision for the missing rank already.
  EXPECT_FALSE(DueWhenAssigned([](Occurrence& o) {
    o.degraded = true;
    o.rank_missing = true;
  }));
  EXPECT_TRUE(DueWhenAssigned([](Occurrence& o) {
    o.degraded = true;
    o.rank_missing = true;
    o.member_returned = true;
  }));
}

}  // namespace
}  // namespace splitd::core
