#include "daemon/core/status_renderer.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "plan/split_planner.h"

namespace splitd::core {
namespace {

// World 2, one dim.
plan::SplitPlan MakePlan() {
  v1::Topology topology;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(R"pb(cluster: "demo"
                                                                 dims { name: "dp" size: 2 })pb",
                                                            &topology));
  absl::StatusOr<plan::SplitPlan> plan = plan::SplitPlanner::Build(topology, 3);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return *std::move(plan);
}

class StatusRendererTest : public ::testing::Test {
 protected:
  StatusRendererTest() {
    // Registered in the order c, b, a.
    for (const char* node : {"c", "b", "a"}) {
      v1::MemberIdentity identity;
      identity.set_pod(absl::StrCat("pod-", node));
      identity.set_node(node);
      identity.set_incarnation(node);
      members_.Add(identity, {}, start_, absl::StrCat("token-", node));
    }
  }

  const plan::SplitPlan plan_ = MakePlan();
  const absl::Time start_ = absl::FromUnixSeconds(1800000000);
  MemberRegistry members_;
  EpochReadiness readiness_;
  EpochTimeline timeline_;
};

TEST_F(StatusRendererTest, BeforeAssignmentEveryMemberIsActiveAndPending) {
  const v1::ClusterStatus status = StatusRenderer::Render(plan_, members_, readiness_, timeline_);
  EXPECT_EQ(status.cluster(), "demo");
  EXPECT_EQ(status.epoch(), 3);
  EXPECT_EQ(status.state(), v1::PHASE_PENDING);
  EXPECT_EQ(status.registered_members(), 3);
  EXPECT_EQ(status.workload_state(), v1::PHASE_UNSPECIFIED);
  ASSERT_EQ(status.members_size(), 3);
  EXPECT_EQ(status.members(0).member_id(), "m-0");
  EXPECT_EQ(status.members(0).state(), v1::MEMBER_STATE_ACTIVE);
  EXPECT_EQ(status.members(0).phase(), v1::PHASE_PENDING);
}

TEST_F(StatusRendererTest, RankedMembersComeFirstThenSparesAndTheLost) {
  // The first two registered (c, b) take the ranks in node order: b rank 0, c rank 1.
  members_.AssignRanks(members_.Resolve(members_.DefaultAssignment(plan_)));
  readiness_.Start(plan_, start_);
  members_.SetLiveness(*members_.FindById("m-0"), Liveness::kLost);
  readiness_.SetDegraded("rank 1 lost");
  const v1::ClusterStatus status = StatusRenderer::Render(plan_, members_, readiness_, timeline_);
  EXPECT_EQ(status.state(), v1::PHASE_DEGRADED);
  EXPECT_EQ(status.reason(), "rank 1 lost");
  ASSERT_EQ(status.members_size(), 3);
  EXPECT_EQ(status.members(0).member_id(), "m-1");
  EXPECT_EQ(status.members(0).rank(), 0);
  EXPECT_EQ(status.members(0).phase(), v1::PHASE_PLANNED);
  EXPECT_EQ(status.members(1).member_id(), "m-0");
  EXPECT_EQ(status.members(1).rank(), 1);
  EXPECT_EQ(status.members(1).state(), v1::MEMBER_STATE_LOST);
  EXPECT_EQ(status.members(2).member_id(), "m-2");
  EXPECT_EQ(status.members(2).state(), v1::MEMBER_STATE_SPARE);
  EXPECT_EQ(status.lost_members(), 1);
  EXPECT_EQ(status.groups_size(), static_cast<int>(plan_.kinds.size()));
}

}  // namespace
}  // namespace splitd::core
