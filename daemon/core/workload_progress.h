#ifndef SPLITD_DAEMON_CORE_WORKLOAD_PROGRESS_H_
#define SPLITD_DAEMON_CORE_WORKLOAD_PROGRESS_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "daemon/core/agent_progress.h"
#include "daemon/core/rank_report.h"
#include "plan/split_plan.h"
#include "splitd/v1/status.pb.h"

namespace splitd::core {

// The workload layer of one epoch: what each rank's workload (the training or serving process
// beside its agent) reported about its own groups, relayed by the agent (RankReport.layer =
// REPORT_LAYER_WORKLOAD). Kept apart from the agents' own progress because its rules differ: a
// workload may restart within an epoch (BOOTSTRAPPING after READY or FAILED starts its rank
// over), and its groups are torch's, not the agent's backend parts, so entries are per kind.
// Whether the layer decides the epoch's READY is the caller's business (EpochReadiness, by the
// topology's `readiness`). Pure: no I/O, no clock reads. Thread-compatible.
class WorkloadProgress {
 public:
  // One kind as one rank's workload validated it; phase UNSPECIFIED until reported.
  struct KindReport {
    v1::Phase phase = v1::PHASE_UNSPECIFIED;
    double allreduce_value = 0;
    double latency_us = 0;
  };
  struct Rank {
    bool reported = false;
    v1::Phase phase = v1::PHASE_PLANNED;
    absl::Time since = absl::InfinitePast();
    std::string reason;             // the latest detail, or why it failed
    std::vector<KindReport> kinds;  // by kind index
  };

  // Every rank of `plan` PLANNED since `start`, nothing reported.
  void Reset(const plan::SplitPlan& plan, absl::Time start);
  // Every phase that started before `now` counts from `now` (the daemon restarted).
  void Resume(absl::Time now);

  // The checks of a workload report's groups for `rank` of `plan` (the caller has checked who
  // sends it, its epoch, rank, phase and fingerprint's presence): at most one entry per kind,
  // each of a kind of the plan that `rank` takes part in, with a phase BOOTSTRAPPING..FAILED
  // (READY or FAILED in a READY report). INVALID_ARGUMENT naming `groups[i]` otherwise.
  // Backends are not checked: a workload may form a kind on other backends than the agent.
  static absl::Status CheckGroups(const plan::SplitPlan& plan, int64_t rank,
                                  const RankReport& report);

  // Records a report CheckGroups accepted, of `rank` held by `member_id`. A rank moves forward
  // only, except that FAILED is always taken and BOOTSTRAPPING after READY or FAILED starts it
  // over (the workload restarted); anything else backwards is ignored. A fingerprint other than
  // the plan's, a FAILED report, a failed group or a READY group whose all-reduce is not the
  // group size fails the rank. Returns the reason ("rank 3 workload: ...") when the rank
  // FAILED with this report, nullopt otherwise.
  std::optional<std::string> Apply(const plan::SplitPlan& plan, const RankReport& report,
                                   absl::Time now);

  const Rank& rank(int64_t rank) const { return ranks_[static_cast<size_t>(rank)]; }
  // Ranks whose workload is in `phase`.
  int64_t count(v1::Phase phase) const { return counts_[static_cast<size_t>(phase)]; }
  bool any_reported() const { return any_reported_; }

  // The layer as a whole (ClusterStatus.workload_state): UNSPECIFIED before any workload
  // reported; FAILED when one failed; READY when all are; else the least advanced phase
  // (PLANNED counting the ranks whose workload has not reported).
  v1::Phase LayerPhase() const;

  // MemberStatus.workload of `rank`, left unset until its workload reported.
  void Fill(const plan::SplitPlan& plan, int64_t rank, v1::MemberStatus* out) const;

 private:
  void SetPhase(int64_t rank, v1::Phase phase, absl::Time now);

  std::vector<Rank> ranks_;
  std::array<int64_t, 9> counts_{};  // ranks per v1::Phase value
  bool any_reported_ = false;
};

}  // namespace splitd::core

#endif  // SPLITD_DAEMON_CORE_WORKLOAD_PROGRESS_H_
