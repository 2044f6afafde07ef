#ifndef SPLITD_DAEMON_CORE_AGENT_PROGRESS_H_
#define SPLITD_DAEMON_CORE_AGENT_PROGRESS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/core/rank_report.h"
#include "plan/split_plan.h"
#include "splitd/v1/status.pb.h"

namespace splitd::core {

// Bounds on the text a report carries into status: its error, and what the rank says it is
// doing ("creating tp"); longer text is cut.
inline constexpr int64_t kMaxReportErrorLength = 4096;
inline constexpr size_t kMaxReportDetailLength = 256;

// The agent layer of one epoch: what each rank's agent reported about the communicators it
// formed and validated itself (RankReport.layer unset), one entry per kind and backend part,
// and from that each rank's phase and the validation figures of every group.
// The workload's own progress is WorkloadProgress's; EpochReadiness composes both.
// Pure: no I/O, no clock reads. Thread-compatible.
class AgentProgress {
 public:
  // What one rank reported about its group of one kind, over every backend part.
  struct KindReport {
    v1::Phase phase = v1::PHASE_UNSPECIFIED;  // UNSPECIFIED: nothing reported
    double allreduce_value = 0;
    double latency_us = 0;
    double bus_bandwidth_gbps = 0;
  };
  struct Rank {
    v1::Phase phase = v1::PHASE_PLANNED;
    absl::Time since = absl::InfinitePast();  // start of `phase`
    std::string reason;                       // why it failed
    std::string detail;                       // what the agent last said it is doing
    RankTimings timings;
    std::vector<KindReport> kinds;  // by kind index
  };
  // A report's group entries by kind index.
  using EntriesByKind = std::vector<std::vector<const RankReport::Group*>>;

  // Every rank of `plan` PLANNED since `start`, nothing reported.
  void Reset(const plan::SplitPlan& plan, absl::Time start);
  // No ranks (before they are assigned).
  void Clear();
  // Every phase that started before `now` counts from `now` (the daemon restarted).
  void Resume(absl::Time now);

  // The checks of an agent report's groups (the caller has checked who sends it, its epoch,
  // rank, phase and fingerprint's presence): at most kinds x 2 entries, each of a kind of the
  // plan that the rank takes part in, on a backend part of that kind, with a phase
  // BOOTSTRAPPING..FAILED (READY or FAILED in a READY report); READY needs an entry for every
  // kind of the rank unless the topology turns preflight off (the agents form no groups then).
  // INVALID_ARGUMENT naming the field otherwise. Returns the entries by kind.
  static absl::StatusOr<EntriesByKind> CheckGroups(const plan::SplitPlan& plan,
                                                   const RankReport& report);

  // Records a checked report of the rank that `member_id` holds. Phases only move forward; a
  // report of an earlier phase (or anything but FAILED after FAILED) changes nothing. A
  // fingerprint other than the plan's, a FAILED report, a failed entry or a READY entry whose
  // all-reduce is not the group size fails the rank. Returns the reason when the rank FAILED
  // with this report, nullopt otherwise.
  std::optional<std::string> Apply(const plan::SplitPlan& plan, const std::string& member_id,
                                   const RankReport& report, const EntriesByKind& entries,
                                   absl::Time now);

  const Rank& rank(int64_t rank) const { return ranks_[static_cast<size_t>(rank)]; }
  const std::vector<Rank>& ranks() const { return ranks_; }
  // Ranks in `phase`.
  int64_t count(v1::Phase phase) const { return counts_[static_cast<size_t>(phase)]; }

  // The rank's phase, its start, reason and timings into `out`.
  void Fill(int64_t rank, v1::MemberStatus* out) const;
  // Validation figures of kind `k`: groups READY and FAILED, per group the smallest all-reduce
  // value and bandwidth and the median latency. O(ranks of the kind).
  void AddKindStatus(const plan::SplitPlan& plan, size_t k, v1::GroupKindStatus* out) const;

 private:
  void SetPhase(int64_t rank, v1::Phase phase, const std::string& reason, absl::Time now);

  std::vector<Rank> ranks_;
  std::array<int64_t, 9> counts_{};  // ranks per v1::Phase value
};

}  // namespace splitd::core

#endif  // SPLITD_DAEMON_CORE_AGENT_PROGRESS_H_
