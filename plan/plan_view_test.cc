#include "plan/plan_view.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "plan/split_planner.h"
#include "splitd/v1/plan.pb.h"
#include "splitd/v1/topology.pb.h"

namespace splitd::plan {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using Lists = std::vector<std::vector<int64_t>>;

constexpr char kTopology[] = R"pb(
  cluster: "llama-serve"
  dims { name: "tp" size: 2 }
  dims { name: "pp" size: 2 }
  dims { name: "dp" size: 2 }
  nodes { gpus_per_node: 4 }
  groups { name: "tp" dims: "tp" backend: "cpu:gloo,cuda:nccl" local: "node" }
  groups { name: "pp" dims: "pp" }
  groups { name: "ep" dims: "tp" dims: "dp" }
  groups {
    name: "custom"
    split_ranks { ranks: 4 ranks: 7 ranks: 5 }
    split_ranks { ranks: 3 ranks: 0 }
  }
)pb";

SplitPlan BuildPlan() {
  v1::Topology topology;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(kTopology, &topology));
  absl::StatusOr<SplitPlan> plan = SplitPlanner::Build(topology, 5);
  EXPECT_THAT(plan, IsOk());
  return plan.ok() ? *std::move(plan) : SplitPlan{};
}

Lists ListsOf(const v1::GroupKindPlan& kind) {
  Lists lists;
  for (const v1::RankList& list : kind.split_ranks()) {
    lists.emplace_back(list.ranks().begin(), list.ranks().end());
  }
  return lists;
}

TEST(PlanViewTest, RendersEveryKindExpanded) {
  const SplitPlan plan = BuildPlan();
  absl::StatusOr<v1::Plan> view = PlanView::ToProto(plan, PlanFilter{});
  ASSERT_THAT(view, IsOk());
  EXPECT_EQ(view->cluster(), "llama-serve");
  EXPECT_EQ(view->epoch(), 5);
  EXPECT_EQ(view->fingerprint(), plan.fingerprint);
  EXPECT_EQ(view->world_size(), 8);
  EXPECT_EQ(view->method(), "split");
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(view->topology(), plan.topology));
  ASSERT_EQ(view->groups_size(), 4);

  const v1::GroupKindPlan& tp = view->groups(0);
  EXPECT_EQ(tp.name(), "tp");
  EXPECT_EQ(tp.backend(), "cpu:gloo,cuda:nccl");
  EXPECT_EQ(tp.mesh(), "");
  EXPECT_EQ(tp.local(), "node");
  EXPECT_THAT(tp.dims(), ElementsAre("tp"));
  EXPECT_EQ(tp.group_size(), 2);
  EXPECT_EQ(tp.group_count(), 4);
  EXPECT_EQ(ListsOf(tp), (Lists{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));

  const v1::GroupKindPlan& ep = view->groups(2);
  EXPECT_THAT(ep.dims(), ElementsAre("tp", "dp"));
  EXPECT_EQ(ep.backend(), "cpu:gloo");
  EXPECT_EQ(ep.group_size(), 4);
  EXPECT_EQ(ep.group_count(), 2);
  EXPECT_EQ(ListsOf(ep), (Lists{{0, 1, 4, 5}, {2, 3, 6, 7}}));

  // Explicit lists of different sizes: canonical order, own order kept, group_size 0.
  const v1::GroupKindPlan& custom = view->groups(3);
  EXPECT_THAT(custom.dims(), IsEmpty());
  EXPECT_EQ(custom.group_size(), 0);
  EXPECT_EQ(custom.group_count(), 2);
  EXPECT_EQ(ListsOf(custom), (Lists{{3, 0}, {4, 7, 5}}));
}

TEST(PlanViewTest, FiltersByGroup) {
  absl::StatusOr<v1::Plan> view = PlanView::ToProto(BuildPlan(), PlanFilter{"pp", std::nullopt});
  ASSERT_THAT(view, IsOk());
  ASSERT_EQ(view->groups_size(), 1);
  EXPECT_EQ(view->groups(0).name(), "pp");
  EXPECT_EQ(ListsOf(view->groups(0)), (Lists{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
}

TEST(PlanViewTest, FiltersByRank) {
  absl::StatusOr<v1::Plan> view = PlanView::ToProto(BuildPlan(), PlanFilter{"", 5});
  ASSERT_THAT(view, IsOk());
  ASSERT_EQ(view->groups_size(), 4);
  EXPECT_EQ(ListsOf(view->groups(0)), (Lists{{4, 5}}));
  EXPECT_EQ(ListsOf(view->groups(1)), (Lists{{5, 7}}));
  EXPECT_EQ(ListsOf(view->groups(2)), (Lists{{0, 1, 4, 5}}));
  EXPECT_EQ(ListsOf(view->groups(3)), (Lists{{4, 7, 5}}));
  // The kind's own shape is still reported.
  EXPECT_EQ(view->groups(0).group_count(), 4);
  EXPECT_EQ(view->groups(0).group_size(), 2);
}

TEST(PlanViewTest, RankInNoExplicitListIsListedWithoutGroups) {
  absl::StatusOr<v1::Plan> view = PlanView::ToProto(BuildPlan(), PlanFilter{"custom", 6});
  ASSERT_THAT(view, IsOk());
  ASSERT_EQ(view->groups_size(), 1);
  EXPECT_EQ(view->groups(0).name(), "custom");
  EXPECT_THAT(view->groups(0).split_ranks(), IsEmpty());
  EXPECT_EQ(view->groups(0).group_count(), 2);
}

TEST(PlanViewTest, FiltersByGroupAndRank) {
  absl::StatusOr<v1::Plan> view = PlanView::ToProto(BuildPlan(), PlanFilter{"ep", 3});
  ASSERT_THAT(view, IsOk());
  ASSERT_EQ(view->groups_size(), 1);
  EXPECT_EQ(ListsOf(view->groups(0)), (Lists{{2, 3, 6, 7}}));
}

TEST(PlanViewTest, UnknownGroupIsNotFound) {
  EXPECT_THAT(PlanView::ToProto(BuildPlan(), PlanFilter{"xp", std::nullopt}),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("group \"xp\" not found in cluster \"llama-serve\"")));
}

TEST(PlanViewTest, RankOutsideTheWorldIsInvalid) {
  EXPECT_THAT(
      PlanView::ToProto(BuildPlan(), PlanFilter{"", 8}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank must be in [0, 8), got 8")));
  EXPECT_THAT(
      PlanView::ToProto(BuildPlan(), PlanFilter{"tp", -1}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank must be in [0, 8), got -1")));
}

TEST(PlanViewTest, AgentPlanCarriesTheGeneratorAndOnlyExplicitLists) {
  const SplitPlan plan = BuildPlan();
  const v1::Plan view = PlanView::ToAgentProto(plan);
  EXPECT_EQ(view.fingerprint(), plan.fingerprint);
  EXPECT_EQ(view.epoch(), 5);
  EXPECT_EQ(view.topology().groups_size(), 4);
  ASSERT_EQ(view.groups_size(), 4);
  EXPECT_EQ(view.groups(0).name(), "tp");
  EXPECT_EQ(view.groups(0).group_count(), 4);
  EXPECT_EQ(view.groups(0).group_size(), 2);
  EXPECT_THAT(view.groups(0).split_ranks(), IsEmpty());
  EXPECT_THAT(view.groups(2).split_ranks(), IsEmpty());
  EXPECT_EQ(ListsOf(view.groups(3)), (Lists{{3, 0}, {4, 7, 5}}));
}

}  // namespace
}  // namespace splitd::plan
