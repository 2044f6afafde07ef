#include "daemon/core/epoch_readiness.h"

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

// World 2, one kind, no preflight groups: an agent's READY needs no entries.
plan::SplitPlan MakePlan(const std::string& readiness) {
  v1::Topology topology;
  EXPECT_TRUE(
      google::protobuf::TextFormat::ParseFromString(absl::StrCat(R"pb(cluster: "demo"
                                                                      dims { name: "dp" size: 2 }
                                                                      preflight: false
                                                                      readiness: ")pb",
                                                                 readiness, "\""),
                                                    &topology));
  absl::StatusOr<plan::SplitPlan> plan = plan::SplitPlanner::Build(topology, 1);
  EXPECT_THAT(plan, IsOk());
  return *std::move(plan);
}

RankReport Report(const plan::SplitPlan& plan, int64_t rank, v1::Phase phase,
                  v1::ReportLayer layer = v1::REPORT_LAYER_UNSPECIFIED) {
  RankReport report;
  report.epoch = plan.epoch;
  report.rank = rank;
  report.fingerprint = plan.fingerprint;
  report.phase = phase;
  report.layer = layer;
  return report;
}

class EpochReadinessTest : public ::testing::Test {
 protected:
  void Apply(const plan::SplitPlan& plan, const RankReport& report, absl::Time at) {
    absl::StatusOr<AgentProgress::EntriesByKind> entries = EpochReadiness::Check(plan, report);
    ASSERT_THAT(entries, IsOk());
    readiness_.Apply(plan, absl::StrCat("m-", report.rank), report, *entries, at);
  }

  const absl::Time start_ = absl::FromUnixSeconds(1800000000);
  EpochReadiness readiness_;
};

TEST_F(EpochReadinessTest, PendingUntilStartedThenAsFarAsTheSlowestRank) {
  const plan::SplitPlan plan = MakePlan("agent");
  EXPECT_EQ(readiness_.Phase(plan), v1::PHASE_PENDING);
  readiness_.Start(plan, start_);
  EXPECT_EQ(readiness_.Phase(plan), v1::PHASE_PLANNED);
  EXPECT_EQ(readiness_.assigned_at(), start_);
  Apply(plan, Report(plan, 0, v1::PHASE_READY), start_ + absl::Seconds(1));
  Apply(plan, Report(plan, 1, v1::PHASE_SPLITTING), start_ + absl::Seconds(1));
  EXPECT_EQ(readiness_.Phase(plan), v1::PHASE_SPLITTING);
  Apply(plan, Report(plan, 1, v1::PHASE_READY), start_ + absl::Seconds(2));
  EXPECT_EQ(readiness_.Phase(plan), v1::PHASE_READY);
  EXPECT_EQ(readiness_.ready_at(), start_ + absl::Seconds(2));
  readiness_.SetDegraded("lost ranks");
  EXPECT_EQ(readiness_.Phase(plan), v1::PHASE_DEGRADED);
  readiness_.Clear();
  EXPECT_EQ(readiness_.Phase(plan), v1::PHASE_PENDING);
  EXPECT_EQ(readiness_.ready_at(), absl::InfinitePast());
  EXPECT_EQ(readiness_.degraded_reason(), "");
}

TEST_F(EpochReadinessTest, WithWorkloadReadinessAWorkloadFailureFailsTheEpochForGood) {
  const plan::SplitPlan plan = MakePlan("workload");
  readiness_.Start(plan, start_);
  for (int64_t rank = 0; rank < 2; ++rank) {
    Apply(plan, Report(plan, rank, v1::PHASE_READY), start_ + absl::Seconds(1));
  }
  EXPECT_EQ(readiness_.Phase(plan), v1::PHASE_VALIDATING);
  RankReport failed = Report(plan, 1, v1::PHASE_FAILED, v1::REPORT_LAYER_WORKLOAD);
  failed.error = "nccl timeout";
  Apply(plan, failed, start_ + absl::Seconds(2));
  EXPECT_EQ(readiness_.Phase(plan), v1::PHASE_FAILED);
  EXPECT_THAT(readiness_.reason(), HasSubstr("rank 1 workload"));
  // The workload restarting does not take the failure back.
  Apply(plan, Report(plan, 1, v1::PHASE_BOOTSTRAPPING, v1::REPORT_LAYER_WORKLOAD),
        start_ + absl::Seconds(3));
  EXPECT_EQ(readiness_.Phase(plan), v1::PHASE_FAILED);
}

TEST_F(EpochReadinessTest, WithAgentReadinessTheWorkloadDecidesNothing) {
  const plan::SplitPlan plan = MakePlan("agent");
  readiness_.Start(plan, start_);
  Apply(plan, Report(plan, 0, v1::PHASE_FAILED, v1::REPORT_LAYER_WORKLOAD), start_);
  EXPECT_EQ(readiness_.Phase(plan), v1::PHASE_PLANNED);
  EXPECT_EQ(readiness_.reason(), "");
  EXPECT_EQ(readiness_.workload().rank(0).phase, v1::PHASE_FAILED);
}

TEST_F(EpochReadinessTest, CheckNamesTheField) {
  const plan::SplitPlan plan = MakePlan("agent");
  EXPECT_THAT(EpochReadiness::Check(plan, Report(plan, 0, v1::PHASE_PLANNED)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("phase must be one of")));
  RankReport report = Report(plan, 0, v1::PHASE_SPLITTING);
  report.fingerprint.clear();
  EXPECT_THAT(
      EpochReadiness::Check(plan, report),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("fingerprint must not be empty")));
  EXPECT_THAT(EpochReadiness::Check(
                  plan, Report(plan, 0, v1::PHASE_SPLITTING, static_cast<v1::ReportLayer>(7))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("layer must be")));
}

}  // namespace
}  // namespace splitd::core
