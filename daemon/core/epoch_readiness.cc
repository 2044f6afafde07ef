#include "daemon/core/epoch_readiness.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "daemon/core/status_fields.h"
#include "plan/topology_validator.h"

namespace splitd::core {

void EpochReadiness::Start(const plan::SplitPlan& plan, absl::Time now) {
  agents_.Reset(plan, now);
  workload_.Reset(plan, now);
  workload_failed_ = false;
  assigned_at_ = now;
  reason_.clear();
  assigned_ = true;
}

void EpochReadiness::Clear() {
  assigned_ = false;
  agents_.Clear();
  workload_failed_ = false;
  assigned_at_ = absl::InfinitePast();
  ready_at_ = absl::InfinitePast();
  reason_.clear();
  degraded_reason_.clear();
}

void EpochReadiness::Resume(absl::Time now) {
  if (!assigned_) return;
  assigned_at_ = std::max(assigned_at_, now);
  agents_.Resume(now);
  workload_.Resume(now);
}

absl::StatusOr<AgentProgress::EntriesByKind> EpochReadiness::Check(const plan::SplitPlan& plan,
                                                                   const RankReport& report) {
  if (!IsReportPhase(report.phase)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "phase must be one of BOOTSTRAPPING, SPLITTING, VALIDATING, READY, FAILED, got ",
        v1::Phase_Name(report.phase)));
  }
  if (report.fingerprint.empty()) {
    return absl::InvalidArgumentError("fingerprint must not be empty");
  }
  if (report.layer == v1::REPORT_LAYER_UNSPECIFIED) {
    return AgentProgress::CheckGroups(plan, report);
  }
  if (report.layer == v1::REPORT_LAYER_WORKLOAD) {
    if (absl::Status status = WorkloadProgress::CheckGroups(plan, report.rank, report);
        !status.ok()) {
      return status;
    }
    return AgentProgress::EntriesByKind();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("layer must be REPORT_LAYER_UNSPECIFIED (the agent's) or "
                   "REPORT_LAYER_WORKLOAD, got ",
                   static_cast<int>(report.layer)));
}

void EpochReadiness::Apply(const plan::SplitPlan& plan, const std::string& member_id,
                           const RankReport& report, const AgentProgress::EntriesByKind& entries,
                           absl::Time now) {
  if (report.layer == v1::REPORT_LAYER_WORKLOAD) {
    std::optional<std::string> failure = workload_.Apply(plan, report, now);
    if (WaitsForWorkload(plan)) {
      workload_failed_ = workload_failed_ || failure.has_value();
      NoteFailure(failure);
    }
  } else {
    NoteFailure(agents_.Apply(plan, member_id, report, entries, now));
  }
  if (Phase(plan) == v1::PHASE_READY && ready_at_ == absl::InfinitePast()) ready_at_ = now;
}

void EpochReadiness::NoteFailure(const std::optional<std::string>& failure) {
  if (failure.has_value() && reason_.empty()) reason_ = *failure;
}

bool EpochReadiness::WaitsForWorkload(const plan::SplitPlan& plan) {
  return plan::TopologyValidator::Readiness(plan.topology) == plan::kReadinessWorkload;
}

v1::Phase EpochReadiness::Phase(const plan::SplitPlan& plan) const {
  if (!assigned_) return v1::PHASE_PENDING;
  if (!degraded_reason_.empty()) return v1::PHASE_DEGRADED;
  if (agents_.count(v1::PHASE_FAILED) > 0 || workload_failed_) return v1::PHASE_FAILED;
  // READY is final for the epoch (short of a failure): a workload restarting afterwards shows
  // in the workload layer's phase, not as an epoch going back.
  if (ready_at_ != absl::InfinitePast()) return v1::PHASE_READY;
  if (agents_.count(v1::PHASE_READY) == plan.world_size) {
    // Every agent is done; what is left is the workloads' own groups.
    return WaitsForWorkload(plan) && workload_.count(v1::PHASE_READY) < plan.world_size
               ? v1::PHASE_VALIDATING
               : v1::PHASE_READY;
  }
  // The epoch is as far as its slowest rank.
  for (int phase = v1::PHASE_PLANNED; phase <= v1::PHASE_READY; ++phase) {
    if (agents_.count(static_cast<v1::Phase>(phase)) > 0) return static_cast<v1::Phase>(phase);
  }
  return v1::PHASE_PLANNED;
}

}  // namespace splitd::core
