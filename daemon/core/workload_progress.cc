#include "daemon/core/workload_progress.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/core/status_fields.h"

namespace splitd::core {
namespace {

int KindIndex(const plan::SplitPlan& plan, const std::string& name) {
  for (size_t k = 0; k < plan.kinds.size(); ++k) {
    if (plan.kinds[k].name == name) return static_cast<int>(k);
  }
  return -1;
}

}  // namespace

void WorkloadProgress::Reset(const plan::SplitPlan& plan, absl::Time start) {
  Rank planned;
  planned.since = start;
  planned.kinds.resize(plan.kinds.size());
  ranks_.assign(static_cast<size_t>(plan.world_size), planned);
  counts_.fill(0);
  counts_[v1::PHASE_PLANNED] = plan.world_size;
  any_reported_ = false;
}

void WorkloadProgress::Resume(absl::Time now) {
  for (Rank& rank : ranks_) rank.since = std::max(rank.since, now);
}

absl::Status WorkloadProgress::CheckGroups(const plan::SplitPlan& plan, int64_t rank,
                                           const RankReport& report) {
  const size_t kind_count = plan.kinds.size();
  if (report.groups.size() > kind_count) {
    return absl::InvalidArgumentError(absl::StrCat("groups must have at most ", kind_count,
                                                   " entries (one per kind) in a workload "
                                                   "report, got ",
                                                   report.groups.size()));
  }
  std::vector<int> kind_of_entry;
  for (size_t i = 0; i < report.groups.size(); ++i) {
    const RankReport::Group& entry = report.groups[i];
    const std::string field = absl::StrCat("groups[", i, "]");
    const int kind_index = KindIndex(plan, entry.kind);
    if (kind_index < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".kind \"", absl::CHexEscape(entry.kind), "\" is not a group kind of the plan"));
    }
    const plan::GroupKind& kind = plan.kinds[static_cast<size_t>(kind_index)];
    if (kind.group_of_rank[static_cast<size_t>(rank)] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": rank ", rank, " takes no part in kind ", kind.name));
    }
    for (size_t j = 0; j < kind_of_entry.size(); ++j) {
      if (kind_of_entry[j] == kind_index) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, ".kind \"", kind.name, "\" is reported twice (also groups[", j, "])"));
      }
    }
    if (absl::Status phase = CheckEntryPhase(field, entry.phase, report.phase); !phase.ok()) {
      return phase;
    }
    kind_of_entry.push_back(kind_index);
  }
  return absl::OkStatus();
}

void WorkloadProgress::SetPhase(int64_t rank, v1::Phase phase, absl::Time now) {
  Rank& state = ranks_[static_cast<size_t>(rank)];
  if (state.phase == phase) return;
  --counts_[state.phase];
  ++counts_[phase];
  state.phase = phase;
  state.since = now;
}

std::optional<std::string> WorkloadProgress::Apply(const plan::SplitPlan& plan,
                                                   const RankReport& report, absl::Time now) {
  const int64_t rank = report.rank;
  Rank& state = ranks_[static_cast<size_t>(rank)];
  const v1::Phase to = report.phase;
  const bool restart = to == v1::PHASE_BOOTSTRAPPING &&
                       (state.phase == v1::PHASE_READY || state.phase == v1::PHASE_FAILED);
  // Reports are relayed without waiting for the answer, so a late one may arrive after a later
  // phase; it changes nothing.
  if (!restart && to != v1::PHASE_FAILED && (state.phase == v1::PHASE_FAILED || to < state.phase)) {
    return std::nullopt;
  }
  state.reported = true;
  any_reported_ = true;
  if (restart) {
    for (KindReport& kind : state.kinds) kind = KindReport{};
    SetPhase(rank, v1::PHASE_PLANNED, now);  // so that BOOTSTRAPPING below starts a new since
  }

  if (report.fingerprint != plan.fingerprint) {
    std::string reason = absl::StrCat("rank ", rank, " workload: derived plan fingerprint ",
                                      report.fingerprint.substr(0, 12), " but the plan's is ",
                                      plan.fingerprint.substr(0, 12));
    SetPhase(rank, v1::PHASE_FAILED, now);
    state.reason = reason;
    return reason;
  }

  std::string failure;
  for (const RankReport::Group& entry : report.groups) {
    const size_t k = static_cast<size_t>(KindIndex(plan, entry.kind));
    const plan::GroupKind& kind = plan.kinds[k];
    const int32_t group = kind.group_of_rank[static_cast<size_t>(rank)];
    const double size = static_cast<double>(kind.offsets[group + 1] - kind.offsets[group]);
    KindReport merged{entry.phase, entry.allreduce_value, entry.latency_us};
    std::string error = entry.error.substr(0, kMaxReportErrorLength);
    if (merged.phase == v1::PHASE_READY && merged.allreduce_value != size) {
      merged.phase = v1::PHASE_FAILED;
      error = absl::StrCat("all-reduce of ones gave ", entry.allreduce_value,
                           ", expected the group size ", size);
    }
    if (merged.phase == v1::PHASE_FAILED && failure.empty()) {
      failure = absl::StrCat("rank ", rank, " workload group ", kind.name, "[", group,
                             "]: ", error.empty() ? std::string("failed") : error);
    }
    state.kinds[k] = merged;
  }

  if (to == v1::PHASE_FAILED || !failure.empty()) {
    if (failure.empty()) {
      const std::string error = report.error.substr(0, kMaxReportErrorLength);
      // An error that names the rank itself (a deadline's) needs no second name.
      failure = absl::StartsWith(error, absl::StrCat("rank ", rank, " "))
                    ? error
                    : absl::StrCat("rank ", rank,
                                   " workload: ", error.empty() ? std::string("failed") : error);
    }
    SetPhase(rank, v1::PHASE_FAILED, now);
    state.reason = failure;
    return failure;
  }
  SetPhase(rank, to, now);
  state.reason = report.detail.substr(0, kMaxReportDetailLength);
  return std::nullopt;
}

v1::Phase WorkloadProgress::LayerPhase() const {
  if (!any_reported_) return v1::PHASE_UNSPECIFIED;
  if (counts_[v1::PHASE_FAILED] > 0) return v1::PHASE_FAILED;
  for (int phase = v1::PHASE_PLANNED; phase <= v1::PHASE_READY; ++phase) {
    if (counts_[static_cast<size_t>(phase)] > 0) return static_cast<v1::Phase>(phase);
  }
  return v1::PHASE_UNSPECIFIED;  // a world of no ranks
}

void WorkloadProgress::Fill(const plan::SplitPlan& plan, int64_t rank,
                            v1::MemberStatus* out) const {
  const Rank& state = ranks_[static_cast<size_t>(rank)];
  if (!state.reported) return;
  v1::WorkloadStatus* workload = out->mutable_workload();
  workload->set_phase(state.phase);
  *workload->mutable_phase_since() = ToTimestamp(state.since);
  workload->set_reason(state.reason);
  for (size_t k = 0; k < state.kinds.size(); ++k) {
    const KindReport& kind = state.kinds[k];
    if (kind.phase == v1::PHASE_UNSPECIFIED) continue;
    v1::WorkloadGroup* group = workload->add_groups();
    group->set_kind(plan.kinds[k].name);
    group->set_phase(kind.phase);
    group->set_allreduce_value(kind.allreduce_value);
    group->set_latency_us(kind.latency_us);
  }
}

}  // namespace splitd::core
