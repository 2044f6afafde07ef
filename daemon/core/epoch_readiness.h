#ifndef SPLITD_DAEMON_CORE_EPOCH_READINESS_H_
#define SPLITD_DAEMON_CORE_EPOCH_READINESS_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/core/agent_progress.h"
#include "daemon/core/rank_report.h"
#include "daemon/core/workload_progress.h"
#include "plan/split_plan.h"
#include "splitd/v1/status.pb.h"

namespace splitd::core {

// The readiness of one cluster's current epoch: the progress of every rank's two layers, its
// agent's own groups (AgentProgress) and its workload's (WorkloadProgress), and from them the
// epoch's phase. With the topology's readiness "workload" the epoch is READY once every agent
// and every workload is READY (VALIDATING while agents are READY and workloads are not), and
// a workload's failure fails the epoch for good; with readiness "agent" the workload layer is
// recorded and decides nothing. READY and FAILED are final until the next epoch; DEGRADED
// (set by the caller) holds until then too. Who sends a report is the caller's to check.
// Pure: no I/O, no clock reads (time is an argument). Thread-compatible.
class EpochReadiness {
 public:
  // Ranks were assigned at `now`, which starts PLANNED: every rank of `plan` PLANNED since
  // `now`, nothing reported, no failure.
  void Start(const plan::SplitPlan& plan, absl::Time now);
  // A new epoch: no ranks assigned, nothing reported, not DEGRADED, not READY.
  void Clear();
  // Every deadline counts from `now` (the daemon restarted): phase starts that are earlier
  // move to `now`.
  void Resume(absl::Time now);

  // The checks of a report's content for `plan` (the caller has checked its sender, epoch and
  // rank): a phase a rank may report, a fingerprint, a known layer and that layer's group
  // checks. INVALID_ARGUMENT naming the field otherwise. Returns the agent layer's entries by
  // kind (none for the workload layer).
  static absl::StatusOr<AgentProgress::EntriesByKind> Check(const plan::SplitPlan& plan,
                                                            const RankReport& report);

  // Records a report Check accepted, of the rank `member_id` holds, at `now`; the epoch's
  // first failure becomes its reason, and its first READY is kept as the time it got there.
  void Apply(const plan::SplitPlan& plan, const std::string& member_id, const RankReport& report,
             const AgentProgress::EntriesByKind& entries, absl::Time now);

  // The epoch's phase: PENDING before ranks are assigned, then DEGRADED, FAILED, READY, or the
  // phase of its slowest rank.
  v1::Phase Phase(const plan::SplitPlan& plan) const;

  // The epoch is DEGRADED with `reason` (lost ranks nobody can take) until the next epoch.
  void SetDegraded(const std::string& reason) { degraded_reason_ = reason; }
  const std::string& degraded_reason() const { return degraded_reason_; }
  // The first failure of the epoch.
  const std::string& reason() const { return reason_; }

  // True when the epoch's READY waits for the workloads (readiness "workload").
  static bool WaitsForWorkload(const plan::SplitPlan& plan);

  bool assigned() const { return assigned_; }
  absl::Time assigned_at() const { return assigned_at_; }  // PLANNED's start
  absl::Time ready_at() const { return ready_at_; }        // InfinitePast before READY
  const AgentProgress& agents() const { return agents_; }
  const WorkloadProgress& workload() const { return workload_; }

 private:
  // Keeps the epoch's first failure as its reason.
  void NoteFailure(const std::optional<std::string>& failure);

  bool assigned_ = false;
  AgentProgress agents_;          // the agent layer, once assigned
  WorkloadProgress workload_;     // the workload layer, once assigned
  bool workload_failed_ = false;  // a workload failed an epoch whose READY waits for workloads
  absl::Time assigned_at_ = absl::InfinitePast();
  absl::Time ready_at_ = absl::InfinitePast();
  std::string reason_;
  std::string degraded_reason_;
};

}  // namespace splitd::core

#endif  // SPLITD_DAEMON_CORE_EPOCH_READINESS_H_
