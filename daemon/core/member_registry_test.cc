#include "daemon/core/member_registry.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "plan/split_planner.h"

namespace splitd::core {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// World 2, one dim.
plan::SplitPlan MakePlan() {
  v1::Topology topology;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(R"pb(cluster: "demo"
                                                                 dims { name: "dp" size: 2 })pb",
                                                            &topology));
  absl::StatusOr<plan::SplitPlan> plan = plan::SplitPlanner::Build(topology, 1);
  EXPECT_THAT(plan, IsOk());
  return *std::move(plan);
}

v1::MemberIdentity Identity(const std::string& node, int64_t local_index,
                            const std::string& incarnation) {
  v1::MemberIdentity identity;
  identity.set_cluster("demo");
  identity.set_pod(absl::StrCat("pod-", node, "-", local_index));
  identity.set_node(node);
  identity.set_host("127.0.0.1");
  identity.set_local_index(local_index);
  identity.set_incarnation(incarnation);
  return identity;
}

class MemberRegistryTest : public ::testing::Test {
 protected:
  Member* Add(const std::string& node, int64_t local_index, const std::string& incarnation) {
    const v1::MemberIdentity identity = Identity(node, local_index, incarnation);
    EXPECT_THAT(registry_.CheckAdmission(plan_, identity, {}), IsOk());
    return registry_.Add(identity, {}, now_, absl::StrCat("digest-", incarnation));
  }

  const plan::SplitPlan plan_ = MakePlan();
  const absl::Time now_ = absl::FromUnixSeconds(1800000000);
  MemberRegistry registry_;
};

TEST_F(MemberRegistryTest, MembersGetIdsInRegistrationOrder) {
  const Member* first = Add("node-b", 0, "b0");
  const Member* second = Add("node-a", 0, "a0");
  EXPECT_EQ(first->member_id, "m-0");
  EXPECT_EQ(second->member_id, "m-1");
  EXPECT_EQ(second->order, 1);
  EXPECT_EQ(second->registered, now_);
  EXPECT_EQ(registry_.FindById("m-1"), second);
  EXPECT_EQ(registry_.FindByIncarnation("b0"), first);
  EXPECT_EQ(registry_.FindBySlot("node-a", 0), second);
  EXPECT_EQ(registry_.FindById("m-9"), nullptr);
}

TEST_F(MemberRegistryTest, DefaultAssignmentOrdersByNodeThenLocalIndex) {
  Add("node-b", 0, "b0");
  EXPECT_THAT(registry_.DefaultAssignment(plan_), IsEmpty());  // one of two
  Add("node-a", 1, "a1");
  Add("node-a", 0, "a0");
  // The first two alive members take the ranks, ordered by node and local index.
  EXPECT_THAT(registry_.DefaultAssignment(plan_), ElementsAre("m-1", "m-0"));
  registry_.AssignRanks(registry_.Resolve(registry_.DefaultAssignment(plan_)));
  EXPECT_THAT(registry_.Assignment(), ElementsAre("m-1", "m-0"));
  ASSERT_EQ(registry_.Spares().size(), 1u);
  EXPECT_EQ(registry_.Spares()[0]->member_id, "m-2");
  registry_.ClearRanks();
  EXPECT_THAT(registry_.Assignment(), IsEmpty());
  EXPECT_EQ(registry_.FindById("m-0")->rank, -1);
}

TEST_F(MemberRegistryTest, AdmissionKnowsTheIncarnationAndRefusesAHeldSlot) {
  const Member* member = Add("node-a", 0, "a0");
  absl::StatusOr<const Member*> again =
      registry_.CheckAdmission(plan_, Identity("node-a", 0, "a0"), {});
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(*again, member);
  EXPECT_THAT(registry_.CheckAdmission(plan_, Identity("node-a", 0, "other"), {}),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("node \"node-a\" local_index 0 is held by member m-0")));
  EXPECT_THAT(registry_.CheckAdmission(plan_, Identity("node-a", 1, "a0"), {}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("incarnation a0 registered before as node \"node-a\"")));
  v1::Capabilities capabilities;
  capabilities.add_backends("");
  EXPECT_THAT(registry_.CheckAdmission(plan_, Identity("node-a", 1, "a1"), capabilities),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("capabilities.backends[0] must not be empty")));
}

TEST_F(MemberRegistryTest, ExcludedMembersStayOutAndCount) {
  Add("node-a", 0, "a0");
  Add("node-a", 1, "a1");
  ASSERT_EQ(registry_.Exclude({"m-0", "m-7"}).size(), 1u);
  EXPECT_THAT(registry_.Exclude({"m-0"}), IsEmpty());
  EXPECT_THAT(registry_.CheckAdmission(plan_, Identity("node-a", 0, "a0"), {}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("was excluded")));
  // The slot of an excluded member is free for a new incarnation.
  absl::StatusOr<const Member*> fresh =
      registry_.CheckAdmission(plan_, Identity("node-a", 0, "a0-new"), {});
  ASSERT_THAT(fresh, IsOk());
  EXPECT_EQ(*fresh, nullptr);
  const LivenessCounts counts = registry_.CountByLiveness();
  EXPECT_EQ(counts.alive, 1);
  EXPECT_EQ(counts.excluded, 1);
  EXPECT_EQ(registry_.AliveCount(), 1);
}

// AliveCount is kept as liveness changes; it always equals a count over the members.
TEST_F(MemberRegistryTest, AliveCountFollowsEveryLivenessChange) {
  Member* a = Add("node-a", 0, "a0");
  Member* b = Add("node-a", 1, "a1");
  Add("node-b", 0, "b0");
  EXPECT_EQ(registry_.AliveCount(), 3);
  registry_.SetLiveness(*a, Liveness::kLost);
  registry_.SetLiveness(*a, Liveness::kLost);
  EXPECT_EQ(registry_.AliveCount(), 2);
  registry_.Exclude({b->member_id});
  EXPECT_EQ(registry_.AliveCount(), 1);
  registry_.SetLiveness(*a, Liveness::kAlive);
  EXPECT_EQ(registry_.AliveCount(), 2);
  EXPECT_EQ(registry_.AliveCount(), registry_.CountByLiveness().alive);
}

}  // namespace
}  // namespace splitd::core
