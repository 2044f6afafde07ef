#include "plan/plan_view.h"

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"

namespace splitd::plan {
namespace {

void AddRankList(absl::Span<const int32_t> members, v1::GroupKindPlan* out) {
  v1::RankList* list = out->add_split_ranks();
  list->mutable_ranks()->Reserve(static_cast<int>(members.size()));
  for (int32_t member : members) list->add_ranks(member);
}

// Members per group when every group of the kind has the same size, else 0.
int64_t UniformGroupSize(const GroupKind& kind) {
  if (kind.group_count() <= 0) return 0;
  const int64_t size = kind.offsets[1] - kind.offsets[0];
  for (int64_t g = 1; g < kind.group_count(); ++g) {
    if (kind.offsets[g + 1] - kind.offsets[g] != size) return 0;
  }
  return size;
}

void RenderSettings(const GroupKind& kind, v1::GroupKindPlan* out) {
  out->set_name(kind.name);
  out->set_backend(kind.backend);
  out->set_mesh(kind.mesh);
  for (const std::string& dim : kind.dims) out->add_dims(dim);
  out->set_local(kind.local);
  out->set_group_size(UniformGroupSize(kind));
  out->set_group_count(kind.group_count());
}

void RenderKind(const GroupKind& kind, const PlanFilter& filter, v1::GroupKindPlan* out) {
  RenderSettings(kind, out);
  if (filter.rank.has_value()) {
    const int32_t group = kind.group_of_rank[static_cast<size_t>(*filter.rank)];
    if (group >= 0) AddRankList(kind.group(group), out);
    return;
  }
  out->mutable_split_ranks()->Reserve(static_cast<int>(kind.group_count()));
  for (int64_t g = 0; g < kind.group_count(); ++g) AddRankList(kind.group(g), out);
}

}  // namespace

absl::StatusOr<v1::Plan> PlanView::ToProto(const SplitPlan& plan, const PlanFilter& filter) {
  if (!filter.group.empty() && plan.FindKind(filter.group) == nullptr) {
    return absl::NotFoundError(absl::StrCat("group \"", absl::CHexEscape(filter.group),
                                            "\" not found in cluster \"", plan.cluster, "\""));
  }
  if (filter.rank.has_value() && (*filter.rank < 0 || *filter.rank >= plan.world_size)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank must be in [0, ", plan.world_size, "), got ", *filter.rank));
  }
  v1::Plan out = Header(plan);
  for (const GroupKind& kind : plan.kinds) {
    if (!filter.group.empty() && kind.name != filter.group) continue;
    RenderKind(kind, filter, out.add_groups());
  }
  return out;
}

v1::Plan PlanView::ToAgentProto(const SplitPlan& plan) {
  v1::Plan out = Header(plan);
  for (const GroupKind& kind : plan.kinds) {
    v1::GroupKindPlan* rendered = out.add_groups();
    RenderSettings(kind, rendered);
    if (!kind.explicit_lists) continue;
    for (int64_t g = 0; g < kind.group_count(); ++g) AddRankList(kind.group(g), rendered);
  }
  return out;
}

v1::Plan PlanView::Header(const SplitPlan& plan) {
  v1::Plan out;
  out.set_cluster(plan.cluster);
  out.set_epoch(plan.epoch);
  out.set_fingerprint(plan.fingerprint);
  out.set_world_size(plan.world_size);
  out.set_method(plan.method);
  *out.mutable_topology() = plan.topology;
  return out;
}

}  // namespace splitd::plan
