#include "daemon/core/hang_attribution.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace splitd::core {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kNow = absl::FromUnixSeconds(1000);

google::protobuf::Timestamp At(double seconds) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(static_cast<int64_t>(seconds));
  ts.set_nanos(static_cast<int32_t>((seconds - static_cast<double>(ts.seconds())) * 1e9));
  return ts;
}

constexpr v1::Phase kPlanned = v1::PHASE_PLANNED;
constexpr v1::Phase kBoot = v1::PHASE_BOOTSTRAPPING;
constexpr v1::Phase kSplit = v1::PHASE_SPLITTING;
constexpr v1::Phase kReady = v1::PHASE_READY;
constexpr v1::MemberState kLost = v1::MEMBER_STATE_LOST;
constexpr v1::MemberState kActive = v1::MEMBER_STATE_ACTIVE;

// One rank's member: agent `phase` since `since` (seconds after the Unix epoch), last heard of
// at 995 s, and its workload's phase (UNSPECIFIED: never reported) since `workload_since`.
struct Rank {
  Rank(v1::Phase phase, double since = 900, v1::MemberState state = kActive,
       v1::Phase workload = v1::PHASE_UNSPECIFIED, double workload_since = 0,
       std::string workload_reason = "")
      : phase(phase),
        since(since),
        state(state),
        workload(workload),
        workload_since(workload_since),
        workload_reason(std::move(workload_reason)) {}

  v1::Phase phase;
  double since;
  v1::MemberState state;
  v1::Phase workload;
  double workload_since;
  std::string workload_reason;
};

v1::ClusterStatus Cluster(v1::Phase state, const std::string& readiness,
                          const std::vector<Rank>& ranks) {
  v1::ClusterStatus status;
  status.set_state(state);
  status.set_readiness(readiness);
  for (size_t i = 0; i < ranks.size(); ++i) {
    const Rank& rank = ranks[i];
    v1::MemberStatus* member = status.add_members();
    member->set_member_id(absl::StrCat("m-", i));
    member->set_rank(static_cast<int64_t>(i));
    member->set_pod(absl::StrCat("pod-", i));
    member->set_node(absl::StrCat("node-", i / 4));
    member->set_state(rank.state);
    member->set_phase(rank.phase);
    *member->mutable_phase_since() = At(rank.since);
    *member->mutable_last_seen() = At(995);
    if (rank.workload != v1::PHASE_UNSPECIFIED) {
      member->mutable_workload()->set_phase(rank.workload);
      *member->mutable_workload()->mutable_phase_since() = At(rank.workload_since);
      member->mutable_workload()->set_reason(rank.workload_reason);
    }
  }
  return status;
}

// "rank:layer:PHASE" of every waiting_on entry, in order.
std::vector<std::string> Waiting(const v1::ClusterStatus& status) {
  std::vector<std::string> out;
  for (const v1::WaitingRank& rank : status.waiting_on()) {
    out.push_back(
        absl::StrCat(rank.rank(), ":", rank.layer(), ":", v1::Phase_Name(rank.phase()).substr(6)));
  }
  return out;
}

TEST(HangAttributionTest, NamesTheRanksThatHoldTheEpochBack) {
  struct Case {
    std::string name;
    v1::ClusterStatus status;
    HangAttribution::WaitingKeys waiting;
    std::vector<std::string> expected;
    int64_t total;
  };
  const std::vector<Case> cases = {
      {"ready epoch", Cluster(kReady, "agent", {{kReady}, {kReady}}), {}, {}, 0},
      {"failed epoch", Cluster(v1::PHASE_FAILED, "agent", {{kBoot}, {kPlanned}}), {}, {}, 0},
      {"pending epoch", Cluster(v1::PHASE_PENDING, "agent", {}), {}, {}, 0},
      {"the unblocked rank holds the blocked ones back",
       Cluster(kPlanned, "agent", {{kBoot, 950}, {kBoot, 940}, {kPlanned, 960}, {kBoot, 930}}),
       {{"m-0", {"rank0"}}, {"m-1", {"rank0"}}, {"m-3", {"rank0"}}},
       {"2:agent:PLANNED"},
       1},
      {"everyone blocked: everyone, longest first",
       Cluster(kBoot, "agent", {{kBoot, 950}, {kBoot, 940}, {kReady, 930}, {kBoot, 960}}),
       {{"m-0", {"k"}}, {"m-1", {"k"}}, {"m-3", {"k"}}},
       {"1:agent:BOOTSTRAPPING", "0:agent:BOOTSTRAPPING", "3:agent:BOOTSTRAPPING"},
       3},
      {"lost members first, even when done",
       Cluster(kSplit, "agent",
               {{kSplit, 900}, {kReady, 990, kLost}, {kSplit, 950}, {kSplit, 980, kLost}}),
       {},
       {"3:agent:SPLITTING", "1:agent:READY", "0:agent:SPLITTING", "2:agent:SPLITTING"},
       4},
      {"workloads once every agent is READY; the unreported one since its agent's READY",
       Cluster(v1::PHASE_VALIDATING, "workload",
               {{kReady, 910, kActive, kReady, 920},
                {kReady, 910, kActive, kSplit, 950, "creating tp"},
                {kReady, 905},
                {kReady, 930, kActive, kSplit, 900}}),
       {},
       {"2:workload:PLANNED", "3:workload:SPLITTING", "1:workload:SPLITTING"},
       3},
      {"agent readiness still names workloads that reported",
       Cluster(v1::PHASE_DEGRADED, "agent",
               {{kReady, 900}, {kReady, 900, kActive, kSplit, 920}, {kReady, 900}}),
       {},
       {"0:workload:PLANNED", "2:workload:PLANNED", "1:workload:SPLITTING"},
       3},
      {"agent readiness with no workload: nothing awaited but the lost",
       Cluster(v1::PHASE_DEGRADED, "agent", {{kReady, 900}, {kReady, 900, kLost}}),
       {},
       {"1:agent:READY"},
       1},
  };
  for (const Case& c : cases) {
    v1::ClusterStatus status = c.status;
    HangAttribution::Fill(c.waiting, kNow, &status);
    EXPECT_EQ(Waiting(status), c.expected) << c.name;
    EXPECT_EQ(status.waiting_on_total(), c.total) << c.name;
  }
}

TEST(HangAttributionTest, EntriesSayWhatTheRankIsDoing) {
  v1::ClusterStatus status = Cluster(
      v1::PHASE_VALIDATING, "workload",
      {{kReady, 910, kActive, kSplit, 950.5, "creating tp"}, {kReady, 910, kActive, kSplit, 940}});
  const HangAttribution::WaitingKeys waiting = {
      {"m-1", {"w/a", "w/b", "w/c", "w/d", "w/e", "w/f"}}};
  HangAttribution::Fill(waiting, kNow, &status);
  // Rank 1 is blocked, so rank 0 is the one to look at.
  ASSERT_EQ(status.waiting_on_size(), 1);
  const v1::WaitingRank& rank = status.waiting_on(0);
  EXPECT_EQ(rank.rank(), 0);
  EXPECT_EQ(rank.member_id(), "m-0");
  EXPECT_EQ(rank.pod(), "pod-0");
  EXPECT_EQ(rank.node(), "node-0");
  EXPECT_EQ(rank.layer(), "workload");
  EXPECT_EQ(rank.phase(), kSplit);
  EXPECT_DOUBLE_EQ(rank.seconds(), 49.5);
  EXPECT_DOUBLE_EQ(rank.last_heartbeat_seconds(), 5);
  EXPECT_EQ(rank.state(), kActive);
  EXPECT_EQ(rank.detail(), "creating tp");
  EXPECT_THAT(status.members(0).waiting_for_keys(), IsEmpty());
  EXPECT_THAT(status.members(1).waiting_for_keys(),
              ElementsAre("w/a", "w/b", "w/c", "w/d", "(+2 more)"));

  // Once rank 0 waits too, both are listed and say for what.
  HangAttribution::WaitingKeys both = waiting;
  both["m-0"] = {"w/store_based_barrier"};
  status = Cluster(
      v1::PHASE_VALIDATING, "workload",
      {{kReady, 910, kActive, kSplit, 950.5, "creating tp"}, {kReady, 910, kActive, kSplit, 940}});
  HangAttribution::Fill(both, kNow, &status);
  ASSERT_EQ(status.waiting_on_size(), 2);
  EXPECT_EQ(status.waiting_on(0).rank(), 1);
  EXPECT_EQ(status.waiting_on(0).detail(), "waiting for keys w/a, w/b, w/c, w/d (+2 more)");
  EXPECT_EQ(status.waiting_on(1).detail(), "waiting for keys w/store_based_barrier");
}

TEST(HangAttributionTest, ListsAtMost32LongestWaitingAndCountsAll) {
  std::vector<Rank> ranks;
  for (int i = 0; i < 40; ++i) ranks.push_back({kPlanned, 900.0 + i});
  ranks[37].since = 100;  // the longest
  v1::ClusterStatus status = Cluster(kPlanned, "agent", ranks);
  HangAttribution::Fill({}, kNow, &status);
  EXPECT_EQ(status.waiting_on_total(), 40);
  ASSERT_EQ(status.waiting_on_size(), 32);
  EXPECT_EQ(status.waiting_on(0).rank(), 37);
  EXPECT_DOUBLE_EQ(status.waiting_on(0).seconds(), 900);
  EXPECT_EQ(status.waiting_on(1).rank(), 0);
  EXPECT_EQ(status.waiting_on(31).rank(), 30);
}

TEST(HangAttributionTest, SparesAreNeverAwaitedButShowTheirKeys) {
  v1::ClusterStatus status = Cluster(kBoot, "agent", {{kBoot, 950}});
  v1::MemberStatus* spare = status.add_members();
  spare->set_member_id("m-9");
  spare->set_rank(-1);
  spare->set_state(v1::MEMBER_STATE_SPARE);
  HangAttribution::Fill({{"m-9", {"x"}}}, kNow, &status);
  EXPECT_THAT(Waiting(status), ElementsAre("0:agent:BOOTSTRAPPING"));
  EXPECT_THAT(status.members(1).waiting_for_keys(), ElementsAre("x"));
}

}  // namespace
}  // namespace splitd::core
