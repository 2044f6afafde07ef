#include "daemon/core/workload_progress.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
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

// World 4: tp 2 x dp 2, plus an explicit kind that leaves ranks 2 and 3 out.
plan::SplitPlan MakePlan() {
  v1::Topology topology;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(R"pb(
                                                              cluster: "demo"
                                                              dims { name: "tp" size: 2 }
                                                              dims { name: "dp" size: 2 }
                                                              groups { name: "tp" dims: "tp" }
                                                              groups { name: "dp" dims: "dp" }
                                                              groups {
                                                                name: "pair"
                                                                split_ranks { ranks: 0 ranks: 1 }
                                                              }
                                                            )pb",
                                                            &topology));
  absl::StatusOr<plan::SplitPlan> plan = plan::SplitPlanner::Build(topology, 1);
  EXPECT_THAT(plan, IsOk());
  return *std::move(plan);
}

class WorkloadProgressTest : public ::testing::Test {
 protected:
  WorkloadProgressTest() : plan_(MakePlan()) { progress_.Reset(plan_, start_); }

  RankReport Report(int64_t rank, v1::Phase phase, const std::string& detail = "") const {
    RankReport report;
    report.epoch = 1;
    report.rank = rank;
    report.fingerprint = plan_.fingerprint;
    report.phase = phase;
    report.layer = v1::REPORT_LAYER_WORKLOAD;
    report.detail = detail;
    return report;
  }

  static void AddGroup(RankReport* report, const std::string& kind, v1::Phase phase, double value) {
    RankReport::Group& group = report->groups.emplace_back();
    group.kind = kind;
    group.phase = phase;
    group.allreduce_value = value;
    group.latency_us = 50;
  }

  plan::SplitPlan plan_;
  absl::Time start_ = absl::FromUnixSeconds(1800000000);
  WorkloadProgress progress_;
};

TEST_F(WorkloadProgressTest, RefusesMalformedGroupsNamingTheEntry) {
  struct Case {
    std::string name;
    int64_t rank;
    v1::Phase phase;
    std::vector<std::pair<std::string, v1::Phase>> groups;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"unknown kind",
       0,
       v1::PHASE_SPLITTING,
       {{"xp", v1::PHASE_SPLITTING}},
       "groups[0].kind \"xp\" is not a group kind of the plan"},
      {"kind the rank is not in",
       2,
       v1::PHASE_SPLITTING,
       {{"tp", v1::PHASE_READY}, {"pair", v1::PHASE_SPLITTING}},
       "groups[1]: rank 2 takes no part in kind pair"},
      {"kind twice",
       0,
       v1::PHASE_VALIDATING,
       {{"tp", v1::PHASE_READY}, {"tp", v1::PHASE_READY}},
       "groups[1].kind \"tp\" is reported twice (also groups[0])"},
      {"no phase",
       0,
       v1::PHASE_SPLITTING,
       {{"dp", v1::PHASE_UNSPECIFIED}},
       "groups[0].phase must be one of BOOTSTRAPPING..FAILED, got PHASE_UNSPECIFIED"},
      {"unfinished in READY",
       0,
       v1::PHASE_READY,
       {{"dp", v1::PHASE_VALIDATING}},
       "groups[0].phase must be READY or FAILED in a READY report"},
      {"too many",
       0,
       v1::PHASE_SPLITTING,
       {{"tp", v1::PHASE_READY},
        {"dp", v1::PHASE_READY},
        {"pair", v1::PHASE_READY},
        {"tp", v1::PHASE_READY}},
       "groups must have at most 3 entries (one per kind)"},
  };
  for (const Case& c : cases) {
    RankReport report = Report(c.rank, c.phase);
    for (const auto& [kind, phase] : c.groups) AddGroup(&report, kind, phase, 2);
    EXPECT_THAT(WorkloadProgress::CheckGroups(plan_, c.rank, report),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.name;
  }
  RankReport fine = Report(0, v1::PHASE_READY);
  AddGroup(&fine, "pair", v1::PHASE_READY, 2);
  EXPECT_THAT(WorkloadProgress::CheckGroups(plan_, 0, fine), IsOk());
}

TEST_F(WorkloadProgressTest, MovesForwardAndKeepsThePhaseStartWithinAPhase) {
  EXPECT_EQ(progress_.LayerPhase(), v1::PHASE_UNSPECIFIED);
  EXPECT_EQ(progress_.rank(1).since, start_);
  const absl::Time t1 = start_ + absl::Seconds(3);
  EXPECT_EQ(progress_.Apply(plan_, Report(1, v1::PHASE_SPLITTING, "creating tp"), t1),
            std::nullopt);
  EXPECT_EQ(
      progress_.Apply(plan_, Report(1, v1::PHASE_SPLITTING, "creating dp"), t1 + absl::Seconds(1)),
      std::nullopt);
  EXPECT_EQ(progress_.rank(1).phase, v1::PHASE_SPLITTING);
  EXPECT_EQ(progress_.rank(1).since, t1);
  EXPECT_EQ(progress_.rank(1).reason, "creating dp");
  // A late BOOTSTRAPPING (not after READY or FAILED) changes nothing.
  EXPECT_EQ(progress_.Apply(plan_, Report(1, v1::PHASE_BOOTSTRAPPING), t1 + absl::Seconds(2)),
            std::nullopt);
  EXPECT_EQ(progress_.rank(1).phase, v1::PHASE_SPLITTING);
  // Ranks that never reported count as PLANNED.
  EXPECT_EQ(progress_.LayerPhase(), v1::PHASE_PLANNED);
  EXPECT_EQ(progress_.count(v1::PHASE_PLANNED), 3);
}

TEST_F(WorkloadProgressTest, BootstrappingAfterReadyOrFailedStartsTheRankOver) {
  RankReport ready = Report(0, v1::PHASE_READY);
  AddGroup(&ready, "tp", v1::PHASE_READY, 2);
  ASSERT_EQ(progress_.Apply(plan_, ready, start_ + absl::Seconds(1)), std::nullopt);
  ASSERT_EQ(progress_.rank(0).phase, v1::PHASE_READY);

  const absl::Time restart = start_ + absl::Seconds(9);
  ASSERT_EQ(progress_.Apply(plan_, Report(0, v1::PHASE_BOOTSTRAPPING, "connecting"), restart),
            std::nullopt);
  EXPECT_EQ(progress_.rank(0).phase, v1::PHASE_BOOTSTRAPPING);
  EXPECT_EQ(progress_.rank(0).since, restart);
  v1::MemberStatus status;
  progress_.Fill(plan_, 0, &status);
  EXPECT_EQ(status.workload().groups_size(), 0);  // the old run's figures are gone

  std::optional<std::string> failed =
      progress_.Apply(plan_, Report(0, v1::PHASE_FAILED), restart + absl::Seconds(1));
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(*failed, "rank 0 workload: failed");
  EXPECT_EQ(progress_.LayerPhase(), v1::PHASE_FAILED);
  ASSERT_EQ(progress_.Apply(plan_, Report(0, v1::PHASE_BOOTSTRAPPING), restart + absl::Seconds(2)),
            std::nullopt);
  EXPECT_EQ(progress_.rank(0).phase, v1::PHASE_BOOTSTRAPPING);
  EXPECT_EQ(progress_.LayerPhase(), v1::PHASE_PLANNED);
}

TEST_F(WorkloadProgressTest, FailuresNameTheRankAndGroup) {
  RankReport wrong_value = Report(3, v1::PHASE_VALIDATING);
  AddGroup(&wrong_value, "dp", v1::PHASE_READY, 1);
  EXPECT_EQ(progress_.Apply(plan_, wrong_value, start_),
            "rank 3 workload group dp[1]: all-reduce of ones gave 1, expected the group size 2");

  RankReport error = Report(2, v1::PHASE_FAILED);
  error.error = "NCCL error: unhandled system error";
  EXPECT_EQ(progress_.Apply(plan_, error, start_),
            "rank 2 workload: NCCL error: unhandled system error");

  RankReport other_plan = Report(1, v1::PHASE_BOOTSTRAPPING);
  other_plan.fingerprint = std::string(64, 'e');
  std::optional<std::string> mismatch = progress_.Apply(plan_, other_plan, start_);
  ASSERT_TRUE(mismatch.has_value());
  EXPECT_THAT(*mismatch, HasSubstr("rank 1 workload: derived plan fingerprint eeeeeeeeeeee"));
  EXPECT_EQ(progress_.count(v1::PHASE_FAILED), 3);
}

TEST_F(WorkloadProgressTest, LayerIsReadyWhenEveryRankIsAndFillShowsItsGroups) {
  for (int64_t rank = 0; rank < 4; ++rank) {
    RankReport ready = Report(rank, v1::PHASE_READY);
    AddGroup(&ready, "tp", v1::PHASE_READY, 2);
    ASSERT_EQ(progress_.Apply(plan_, ready, start_ + absl::Seconds(rank)), std::nullopt);
    EXPECT_EQ(progress_.LayerPhase(), rank < 3 ? v1::PHASE_PLANNED : v1::PHASE_READY);
  }
  v1::MemberStatus status;
  progress_.Fill(plan_, 2, &status);
  ASSERT_TRUE(status.has_workload());
  EXPECT_EQ(status.workload().phase(), v1::PHASE_READY);
  EXPECT_EQ(status.workload().phase_since().seconds(), 1800000002);
  ASSERT_EQ(status.workload().groups_size(), 1);
  EXPECT_EQ(status.workload().groups(0).kind(), "tp");
  EXPECT_EQ(status.workload().groups(0).allreduce_value(), 2);
  EXPECT_EQ(status.workload().groups(0).latency_us(), 50);
}

}  // namespace
}  // namespace splitd::core
