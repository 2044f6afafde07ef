#include "daemon/core/stall_finder.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace splitd::core {
namespace {

// A rank's deadline that has passed: the layer and phase, since when and against what.
struct Overdue {
  v1::ReportLayer layer = v1::REPORT_LAYER_UNSPECIFIED;
  v1::Phase phase = v1::PHASE_UNSPECIFIED;
  absl::Time from;
  int64_t deadline_ms = 0;
  const char* field = "";  // in `deadlines`
};

// "SPLITTING" for PHASE_SPLITTING.
std::string PhaseName(v1::Phase phase) {
  std::string name = v1::Phase_Name(phase);
  return name.rfind("PHASE_", 0) == 0 ? name.substr(6) : name;
}

std::optional<Overdue> RankOverdue(const plan::SplitPlan& plan, const MemberRegistry& members,
                                   const EpochReadiness& readiness, int64_t rank, absl::Time now,
                                   const v1::Deadlines& deadlines) {
  if (members.ranked()[static_cast<size_t>(rank)]->liveness == Liveness::kExcluded) {
    return std::nullopt;
  }
  const AgentProgress::Rank& state = readiness.agents().rank(rank);
  auto past = [now](absl::Time from, int64_t deadline_ms) {
    return deadline_ms > 0 && now - from > absl::Milliseconds(deadline_ms);
  };
  const v1::ReportLayer agent = v1::REPORT_LAYER_UNSPECIFIED;
  const absl::Time assigned_at = readiness.assigned_at();
  switch (state.phase) {
    case v1::PHASE_PLANNED:
    case v1::PHASE_BOOTSTRAPPING:
      // One deadline from the plan's arrival to a connected world, over both phases.
      if (!past(assigned_at, deadlines.bootstrap_ms())) return std::nullopt;
      return Overdue{agent, state.phase, assigned_at, deadlines.bootstrap_ms(), "bootstrap_ms"};
    case v1::PHASE_SPLITTING:
      if (!past(state.since, deadlines.split_ms())) return std::nullopt;
      return Overdue{agent, state.phase, state.since, deadlines.split_ms(), "split_ms"};
    case v1::PHASE_VALIDATING:
      if (!past(state.since, deadlines.validate_ms())) return std::nullopt;
      return Overdue{agent, state.phase, state.since, deadlines.validate_ms(), "validate_ms"};
    case v1::PHASE_READY:
      break;
    default:
      return std::nullopt;
  }
  if (!EpochReadiness::WaitsForWorkload(plan)) return std::nullopt;
  const WorkloadProgress::Rank& workload = readiness.workload().rank(rank);
  if (workload.phase == v1::PHASE_READY || workload.phase == v1::PHASE_FAILED) return std::nullopt;
  // The workload starts when its agent hands it the plan, at the agent's READY.
  const absl::Time from = std::max(workload.since, state.since);
  if (!past(from, deadlines.workload_ms())) return std::nullopt;
  return Overdue{v1::REPORT_LAYER_WORKLOAD, workload.phase, from, deadlines.workload_ms(),
                 "workload_ms"};
}

// The FAILED report that records `stall`, as its rank would have sent it.
RankReport StallReport(const plan::SplitPlan& plan, const EpochReadiness& readiness,
                       const Stall& stall) {
  RankReport report;
  report.member_id = stall.member->member_id;
  report.epoch = plan.epoch;
  report.rank = stall.rank;
  report.fingerprint = plan.fingerprint;
  report.phase = v1::PHASE_FAILED;
  report.error = stall.reason;
  report.layer = stall.layer;
  // The agent layer keeps the timings its rank reported.
  if (stall.layer != v1::REPORT_LAYER_WORKLOAD) {
    report.timings = readiness.agents().rank(stall.rank).timings;
  }
  return report;
}

}  // namespace

std::optional<Stall> StallFinder::Find(const plan::SplitPlan& plan, const MemberRegistry& members,
                                       const EpochReadiness& readiness, absl::Time now,
                                       const v1::Deadlines& deadlines) {
  const v1::Phase current = readiness.Phase(plan);
  if (current < v1::PHASE_PLANNED || current > v1::PHASE_VALIDATING) return std::nullopt;
  if (deadlines.bootstrap_ms() == 0 && deadlines.split_ms() == 0 && deadlines.validate_ms() == 0 &&
      deadlines.workload_ms() == 0) {
    return std::nullopt;
  }
  int64_t slowest = -1;
  Overdue overdue;
  for (int64_t rank = 0; rank < plan.world_size; ++rank) {
    std::optional<Overdue> found = RankOverdue(plan, members, readiness, rank, now, deadlines);
    if (found.has_value() && (slowest < 0 || std::make_pair(found->layer, found->phase) <
                                                 std::make_pair(overdue.layer, overdue.phase))) {
      slowest = rank;
      overdue = *found;
    }
  }
  if (slowest < 0) return std::nullopt;

  const Member& member = *members.ranked()[static_cast<size_t>(slowest)];
  const bool workload = overdue.layer == v1::REPORT_LAYER_WORKLOAD;
  const std::string& detail = workload ? readiness.workload().rank(slowest).reason
                                       : readiness.agents().rank(slowest).detail;
  Stall stall;
  stall.rank = slowest;
  stall.member = &member;
  stall.layer = overdue.layer;
  stall.phase = overdue.phase;
  stall.reason = absl::StrFormat(
      "rank %d (pod %s, node %s) stuck in %s %s%s for %.1f s: deadline %s %d", slowest,
      member.identity.pod(), member.identity.node(), workload ? "workload" : "agent",
      PhaseName(overdue.phase), detail.empty() ? "" : absl::StrCat(" (", detail, ")"),
      absl::ToDoubleSeconds(now - overdue.from), overdue.field, overdue.deadline_ms);
  stall.report = StallReport(plan, readiness, stall);
  return stall;
}

}  // namespace splitd::core
