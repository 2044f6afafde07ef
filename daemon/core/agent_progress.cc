#include "daemon/core/agent_progress.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "daemon/core/status_fields.h"

namespace splitd::core {
namespace {

// One entry's own checks; its kind index, or the error naming `field`.
absl::StatusOr<int> CheckEntry(const plan::SplitPlan& plan, const RankReport& report,
                               const RankReport::Group& entry, const std::string& field) {
  int kind_index = -1;
  for (size_t k = 0; k < plan.kinds.size(); ++k) {
    if (plan.kinds[k].name == entry.kind) kind_index = static_cast<int>(k);
  }
  if (kind_index < 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".kind \"", absl::CHexEscape(entry.kind),
                                                   "\" is not a group kind of the plan"));
  }
  const plan::GroupKind& kind = plan.kinds[static_cast<size_t>(kind_index)];
  if (kind.group_of_rank[static_cast<size_t>(report.rank)] < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": rank ", report.rank, " takes no part in kind ", kind.name));
  }
  bool backend_known = false;
  for (absl::string_view part : absl::StrSplit(kind.backend, ',')) {
    if (part == entry.backend) backend_known = true;
  }
  if (!backend_known) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".backend \"", absl::CHexEscape(entry.backend),
                     "\" is not part of kind ", kind.name, "'s backend \"", kind.backend, "\""));
  }
  if (absl::Status phase = CheckEntryPhase(field, entry.phase, report.phase); !phase.ok()) {
    return phase;
  }
  return kind_index;
}

}  // namespace

void AgentProgress::Reset(const plan::SplitPlan& plan, absl::Time start) {
  Rank planned;
  planned.since = start;
  planned.kinds.resize(plan.kinds.size());
  ranks_.assign(static_cast<size_t>(plan.world_size), planned);
  counts_.fill(0);
  counts_[v1::PHASE_PLANNED] = plan.world_size;
}

void AgentProgress::Resume(absl::Time now) {
  for (Rank& rank : ranks_) rank.since = std::max(rank.since, now);
}

void AgentProgress::Clear() {
  ranks_.clear();
  counts_.fill(0);
}

absl::StatusOr<AgentProgress::EntriesByKind> AgentProgress::CheckGroups(const plan::SplitPlan& plan,
                                                                        const RankReport& report) {
  const size_t kind_count = plan.kinds.size();
  if (report.groups.size() > kind_count * 2) {
    return absl::InvalidArgumentError(absl::StrCat("groups must have at most ", kind_count * 2,
                                                   " entries (kinds x backends), got ",
                                                   report.groups.size()));
  }
  EntriesByKind entries(kind_count);
  for (size_t i = 0; i < report.groups.size(); ++i) {
    absl::StatusOr<int> kind_index =
        CheckEntry(plan, report, report.groups[i], absl::StrCat("groups[", i, "]"));
    if (!kind_index.ok()) return kind_index.status();
    entries[static_cast<size_t>(*kind_index)].push_back(&report.groups[i]);
  }
  const bool preflight = !plan.topology.has_preflight() || plan.topology.preflight();
  if (report.phase == v1::PHASE_READY && preflight) {
    for (size_t k = 0; k < kind_count; ++k) {
      const plan::GroupKind& kind = plan.kinds[k];
      if (kind.group_of_rank[static_cast<size_t>(report.rank)] >= 0 && entries[k].empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "groups: phase READY needs a report for kind ", kind.name, " of rank ", report.rank));
      }
    }
  }
  return entries;
}

void AgentProgress::SetPhase(int64_t rank, v1::Phase phase, const std::string& reason,
                             absl::Time now) {
  Rank& state = ranks_[static_cast<size_t>(rank)];
  --counts_[state.phase];
  ++counts_[phase];
  if (state.phase != phase) state.since = now;
  state.phase = phase;
  state.reason = reason;
}

std::optional<std::string> AgentProgress::Apply(const plan::SplitPlan& plan,
                                                const std::string& member_id,
                                                const RankReport& report,
                                                const EntriesByKind& entries, absl::Time now) {
  const int64_t rank = report.rank;
  Rank& state = ranks_[static_cast<size_t>(rank)];
  // Phases only move forward within an epoch. Agents send progress without waiting for the
  // answer, so one may arrive after a later phase; it changes nothing.
  if (report.phase != v1::PHASE_FAILED &&
      (state.phase == v1::PHASE_FAILED || report.phase < state.phase)) {
    return std::nullopt;
  }
  state.timings = report.timings;
  state.detail = report.detail.substr(0, kMaxReportDetailLength);

  if (report.fingerprint != plan.fingerprint) {
    std::string reason = absl::StrCat(
        "rank ", rank, " (member ", member_id, ") derived plan fingerprint ",
        report.fingerprint.substr(0, 12), " but the plan's is ", plan.fingerprint.substr(0, 12));
    SetPhase(rank, v1::PHASE_FAILED, reason, now);
    return reason;
  }

  // Merge the entries per kind: a kind is READY only when every backend part reported READY.
  std::string failure;
  for (size_t k = 0; k < plan.kinds.size(); ++k) {
    if (entries[k].empty()) continue;
    const plan::GroupKind& kind = plan.kinds[k];
    const int32_t group = kind.group_of_rank[static_cast<size_t>(rank)];
    const double size = static_cast<double>(kind.offsets[group + 1] - kind.offsets[group]);
    KindReport merged;
    merged.phase = v1::PHASE_READY;
    merged.allreduce_value = size;
    for (const RankReport::Group* entry : entries[k]) {
      v1::Phase phase = entry->phase;
      std::string error = entry->error.substr(0, kMaxReportErrorLength);
      if (phase == v1::PHASE_READY && entry->allreduce_value != size) {
        phase = v1::PHASE_FAILED;
        error = absl::StrCat("all-reduce of ones gave ", entry->allreduce_value,
                             ", expected the group size ", size);
      }
      if (phase == v1::PHASE_FAILED && failure.empty()) {
        failure =
            absl::StrCat("rank ", rank, " group ", kind.name, "[", group, "] (", entry->backend,
                         "): ", error.empty() ? std::string("failed") : error);
      }
      if (merged.phase != v1::PHASE_FAILED && (phase == v1::PHASE_FAILED || phase < merged.phase)) {
        merged.phase = phase;
      }
      merged.allreduce_value = std::min(merged.allreduce_value, entry->allreduce_value);
      merged.latency_us = std::max(merged.latency_us, entry->latency_us);
      merged.bus_bandwidth_gbps =
          merged.bus_bandwidth_gbps == 0
              ? entry->bus_bandwidth_gbps
              : std::min(merged.bus_bandwidth_gbps, entry->bus_bandwidth_gbps);
    }
    state.kinds[k] = merged;
  }

  if (report.phase == v1::PHASE_FAILED || !failure.empty()) {
    if (failure.empty()) {
      const std::string error = report.error.substr(0, kMaxReportErrorLength);
      // A deadline's error names the rank, its pod and node already.
      failure = absl::StrContains(error, ") stuck in ") &&
                        absl::StartsWith(error, absl::StrCat("rank ", rank, " ("))
                    ? error
                    : absl::StrCat("rank ", rank, " (member ", member_id,
                                   "): ", error.empty() ? std::string("failed") : error);
    }
    SetPhase(rank, v1::PHASE_FAILED, failure, now);
    return failure;
  }
  SetPhase(rank, report.phase, "", now);
  return std::nullopt;
}

void AgentProgress::Fill(int64_t rank, v1::MemberStatus* out) const {
  const Rank& state = ranks_[static_cast<size_t>(rank)];
  out->set_phase(state.phase);
  out->set_reason(state.reason);
  *out->mutable_timings() = ToPhaseTimings(state.timings);
  *out->mutable_phase_since() = ToTimestamp(state.since);
}

void AgentProgress::AddKindStatus(const plan::SplitPlan& plan, size_t k,
                                  v1::GroupKindStatus* out) const {
  const plan::GroupKind& kind = plan.kinds[k];
  out->set_kind(kind.name);
  out->set_groups(kind.group_count());
  if (ranks_.empty()) return;
  int64_t ready = 0;
  int64_t failed = 0;
  double max_latency = 0;
  for (int64_t g = 0; g < kind.group_count(); ++g) {
    bool all_ready = true;
    bool any_failed = false;
    bool any_report = false;
    double value = 0;
    double bandwidth = 0;
    std::vector<double> latencies;
    for (int32_t rank : kind.group(g)) {
      const KindReport& report = ranks_[static_cast<size_t>(rank)].kinds[k];
      if (report.phase == v1::PHASE_UNSPECIFIED) {
        all_ready = false;
        continue;
      }
      any_report = true;
      if (report.phase == v1::PHASE_FAILED) any_failed = true;
      if (report.phase != v1::PHASE_READY) all_ready = false;
      value = latencies.empty() ? report.allreduce_value : std::min(value, report.allreduce_value);
      bandwidth = bandwidth == 0 ? report.bus_bandwidth_gbps
                                 : std::min(bandwidth, report.bus_bandwidth_gbps);
      latencies.push_back(report.latency_us);
    }
    if (!any_report) continue;
    std::sort(latencies.begin(), latencies.end());
    const double median = latencies[latencies.size() / 2];
    v1::GroupValidation* validation = out->add_validations();
    validation->set_group_index(g);
    validation->set_phase(any_failed ? v1::PHASE_FAILED
                                     : (all_ready ? v1::PHASE_READY : v1::PHASE_VALIDATING));
    validation->set_allreduce_value(value);
    validation->set_latency_us(median);
    validation->set_bus_bandwidth_gbps(bandwidth);
    if (any_failed) ++failed;
    if (all_ready && !any_failed) ++ready;
    max_latency = std::max(max_latency, median);
  }
  out->set_ready(ready);
  out->set_failed(failed);
  out->set_max_latency_us(max_latency);
}

}  // namespace splitd::core
