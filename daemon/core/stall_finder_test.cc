#include "daemon/core/stall_finder.h"

#include <optional>
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

// World 2 without preflight groups, a 60 s bootstrap deadline and a 30 s split deadline.
plan::SplitPlan MakePlan() {
  v1::Topology topology;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(cluster: "demo"
           dims { name: "dp" size: 2 }
           preflight: false
           deadlines { bootstrap_ms: 60000 split_ms: 30000 })pb",
      &topology));
  absl::StatusOr<plan::SplitPlan> plan = plan::SplitPlanner::Build(topology, 1);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return *std::move(plan);
}

class StallFinderTest : public ::testing::Test {
 protected:
  StallFinderTest() {
    for (int64_t index = 0; index < 2; ++index) {
      v1::MemberIdentity identity;
      identity.set_pod(absl::StrCat("pod-", index));
      identity.set_node("node-a");
      identity.set_local_index(index);
      identity.set_incarnation(absl::StrCat("inc-", index));
      members_.Add(identity, {}, start_, absl::StrCat("token-", index));
    }
    members_.AssignRanks(members_.Resolve({"m-0", "m-1"}));
    readiness_.Start(plan_, start_);
  }

  std::optional<Stall> FindAt(double seconds) const {
    return StallFinder::Find(plan_, members_, readiness_, start_ + absl::Seconds(seconds),
                             plan_.topology.deadlines());
  }

  void Report(int64_t rank, v1::Phase phase, double seconds) {
    RankReport report;
    report.epoch = 1;
    report.rank = rank;
    report.fingerprint = plan_.fingerprint;
    report.phase = phase;
    absl::StatusOr<AgentProgress::EntriesByKind> entries = EpochReadiness::Check(plan_, report);
    ASSERT_TRUE(entries.ok()) << entries.status();
    readiness_.Apply(plan_, absl::StrCat("m-", rank), report, *entries,
                     start_ + absl::Seconds(seconds));
  }

  const plan::SplitPlan plan_ = MakePlan();
  const absl::Time start_ = absl::FromUnixSeconds(1800000000);
  MemberRegistry members_;
  EpochReadiness readiness_;
};

TEST_F(StallFinderTest, TheRankInTheEarlierPhaseIsTheStallWithItsFailureReport) {
  EXPECT_EQ(FindAt(59), std::nullopt);
  Report(0, v1::PHASE_SPLITTING, 10);
  std::optional<Stall> stall = FindAt(61);
  ASSERT_TRUE(stall.has_value());
  EXPECT_EQ(stall->rank, 1);
  EXPECT_EQ(stall->phase, v1::PHASE_PLANNED);
  EXPECT_EQ(stall->reason,
            "rank 1 (pod pod-1, node node-a) stuck in agent PLANNED for 61.0 s: deadline "
            "bootstrap_ms 60000");
  EXPECT_EQ(stall->report.member_id, "m-1");
  EXPECT_EQ(stall->report.session_token, "");  // the daemon's own report
  EXPECT_EQ(stall->report.phase, v1::PHASE_FAILED);
  EXPECT_EQ(stall->report.error, stall->reason);
  EXPECT_EQ(stall->report.fingerprint, plan_.fingerprint);
}

TEST_F(StallFinderTest, ExcludedRanksAndFinishedEpochsHoldNothingBack) {
  Report(0, v1::PHASE_READY, 10);
  members_.Exclude({"m-1"});
  EXPECT_EQ(FindAt(61), std::nullopt);
  readiness_.SetDegraded("lost ranks");
  EXPECT_EQ(FindAt(600), std::nullopt);
}

}  // namespace
}  // namespace splitd::core
