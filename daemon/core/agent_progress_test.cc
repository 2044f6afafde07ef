#include "daemon/core/agent_progress.h"

#include <string>
#include <utility>

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
using ::testing::HasSubstr;

// World 4: tp 2 x dp 2; `extra` is added to the topology.
plan::SplitPlan MakePlan(const std::string& extra = "") {
  v1::Topology topology;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
      absl::StrCat(R"pb(cluster: "demo"
                        dims { name: "tp" size: 2 }
                        dims { name: "dp" size: 2 })pb",
                   extra),
      &topology));
  absl::StatusOr<plan::SplitPlan> plan = plan::SplitPlanner::Build(topology, 1);
  EXPECT_THAT(plan, IsOk());
  return *std::move(plan);
}

RankReport Report(const plan::SplitPlan& plan, int64_t rank, v1::Phase phase) {
  RankReport report;
  report.epoch = 1;
  report.rank = rank;
  report.fingerprint = plan.fingerprint;
  report.phase = phase;
  return report;
}

TEST(AgentProgressTest, ReadyNeedsEveryKindOnlyWithPreflight) {
  const plan::SplitPlan with = MakePlan();
  const RankReport ready = Report(with, 0, v1::PHASE_READY);
  EXPECT_THAT(AgentProgress::CheckGroups(with, ready),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("groups: phase READY needs a report for kind tp of rank 0")));
  // The agents formed nothing of their own: READY is the plan handed to the workload.
  const plan::SplitPlan without = MakePlan("preflight: false");
  EXPECT_THAT(AgentProgress::CheckGroups(without, Report(without, 0, v1::PHASE_READY)), IsOk());
}

TEST(AgentProgressTest, RecordsWhenEachPhaseStarted) {
  const plan::SplitPlan plan = MakePlan();
  const absl::Time start = absl::FromUnixSeconds(1800000000);
  AgentProgress progress;
  progress.Reset(plan, start);
  EXPECT_EQ(progress.rank(2).since, start);
  EXPECT_EQ(progress.count(v1::PHASE_PLANNED), 4);

  const AgentProgress::EntriesByKind none(plan.kinds.size());
  RankReport splitting = Report(plan, 2, v1::PHASE_SPLITTING);
  splitting.detail = "splitting dp";
  const absl::Time t1 = start + absl::Seconds(4);
  EXPECT_EQ(progress.Apply(plan, "m-2", splitting, none, t1), std::nullopt);
  // The same phase again keeps its start; an earlier one is ignored.
  EXPECT_EQ(progress.Apply(plan, "m-2", splitting, none, t1 + absl::Seconds(1)), std::nullopt);
  EXPECT_EQ(progress.Apply(plan, "m-2", Report(plan, 2, v1::PHASE_BOOTSTRAPPING), none,
                           t1 + absl::Seconds(2)),
            std::nullopt);
  EXPECT_EQ(progress.rank(2).phase, v1::PHASE_SPLITTING);
  EXPECT_EQ(progress.rank(2).since, t1);
  EXPECT_EQ(progress.rank(2).detail, "splitting dp");

  RankReport failed = Report(plan, 2, v1::PHASE_FAILED);
  failed.error = "connection reset";
  EXPECT_EQ(progress.Apply(plan, "m-2", failed, none, t1 + absl::Seconds(3)),
            "rank 2 (member m-2): connection reset");
  v1::MemberStatus status;
  progress.Fill(2, &status);
  EXPECT_EQ(status.phase(), v1::PHASE_FAILED);
  EXPECT_EQ(status.phase_since().seconds(), 1800000007);
  EXPECT_EQ(status.reason(), "rank 2 (member m-2): connection reset");
}

}  // namespace
}  // namespace splitd::core
