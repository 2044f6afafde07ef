#include "daemon/core/epoch_timeline.h"

#include <utility>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "plan/split_planner.h"

namespace splitd::core {
namespace {

// World 2, no preflight groups.
plan::SplitPlan MakePlan() {
  v1::Topology topology;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(R"pb(cluster: "demo"
                                                                 dims { name: "dp" size: 2 }
                                                                 preflight: false)pb",
                                                            &topology));
  absl::StatusOr<plan::SplitPlan> plan = plan::SplitPlanner::Build(topology, 1);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return *std::move(plan);
}

TEST(EpochTimelineTest, CauseOnlyBeforeRanksAreAssigned) {
  EpochTimeline timeline;
  timeline.Start(absl::FromUnixSeconds(1800000000));
  timeline.SetCause("member lost", 1500, 20);
  const v1::EpochTimings timings = timeline.Timings(EpochReadiness());
  EXPECT_EQ(timeline.reason(), "member lost");
  EXPECT_EQ(timings.detect_ms(), 1500);
  EXPECT_EQ(timings.plan_ms(), 20);
  EXPECT_EQ(timings.ready_ms(), 0);
  timeline.Start(absl::FromUnixSeconds(1800000100));
  EXPECT_EQ(timeline.reason(), "");
  EXPECT_EQ(timeline.Timings(EpochReadiness()).detect_ms(), 0);
}

TEST(EpochTimelineTest, SlowestRankAndReadyFromTheEpochsStart) {
  const plan::SplitPlan plan = MakePlan();
  const absl::Time start = absl::FromUnixSeconds(1800000000);
  EpochTimeline timeline;
  timeline.Start(start);
  EpochReadiness readiness;
  readiness.Start(plan, start);
  for (int64_t rank = 0; rank < 2; ++rank) {
    RankReport report;
    report.epoch = 1;
    report.rank = rank;
    report.fingerprint = plan.fingerprint;
    report.phase = v1::PHASE_READY;
    report.timings.plan_received_unix_ms =
        absl::ToDoubleMilliseconds(start - absl::UnixEpoch()) + 100 * (rank + 1);
    report.timings.bootstrap_ms = 10.0 * (rank + 1);
    absl::StatusOr<AgentProgress::EntriesByKind> entries = EpochReadiness::Check(plan, report);
    ASSERT_TRUE(entries.ok()) << entries.status();
    readiness.Apply(plan, "m", report, *entries, start + absl::Seconds(3));
  }
  const v1::EpochTimings timings = timeline.Timings(readiness);
  EXPECT_DOUBLE_EQ(timings.deliver_ms(), 200);
  EXPECT_DOUBLE_EQ(timings.bootstrap_ms(), 20);
  EXPECT_DOUBLE_EQ(timings.ready_ms(), 3000);
}

}  // namespace
}  // namespace splitd::core
