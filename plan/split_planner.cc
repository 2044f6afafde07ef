#include "plan/split_planner.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/types/span.h"
#include "common/status_macros.h"
#include "plan/plan_fingerprint.h"
#include "plan/topology_validator.h"

namespace splitd::plan {
namespace {

using google::protobuf::RepeatedPtrField;

// Members shown when a message quotes a group.
constexpr size_t kMaxQuotedMembers = 16;

// The layout of a generated kind in its mesh. Dims are split into those the members vary over
// (`inner_*`) and the others (`outer_*`), both in ascending dim index (innermost first), with
// the mesh's prefix-product strides.
struct Generator {
  std::vector<int64_t> inner_sizes;
  std::vector<int64_t> inner_strides;
  std::vector<int64_t> outer_sizes;
  std::vector<int64_t> outer_strides;
  int64_t group_size = 1;
  int64_t group_count = 1;
};

// The dims a group's `mesh` refers to, or nullptr for an unknown mesh.
const RepeatedPtrField<v1::Dim>* MeshDims(const v1::Topology& topology, const std::string& mesh) {
  if (mesh.empty()) return &topology.dims();
  for (const v1::Mesh& candidate : topology.meshes()) {
    if (candidate.name() == mesh) return &candidate.dims();
  }
  return nullptr;
}

// Returns false when `group` does not fit `topology` (never for a normalized topology).
bool MakeGenerator(const v1::Topology& topology, const v1::GroupSpec& group, Generator* generator) {
  const RepeatedPtrField<v1::Dim>* dims = MeshDims(topology, group.mesh());
  if (dims == nullptr) return false;
  int64_t stride = 1;
  int matched = 0;
  for (const v1::Dim& dim : *dims) {
    const bool in_group =
        std::find(group.dims().begin(), group.dims().end(), dim.name()) != group.dims().end();
    if (in_group) {
      generator->inner_sizes.push_back(dim.size());
      generator->inner_strides.push_back(stride);
      generator->group_size *= dim.size();
      ++matched;
    } else {
      generator->outer_sizes.push_back(dim.size());
      generator->outer_strides.push_back(stride);
      generator->group_count *= dim.size();
    }
    stride *= dim.size();
  }
  return matched == group.dims_size() && stride == topology.world_size();
}

// Every combination of coordinates along `sizes`, first dim fastest, as offsets
// Σ c_i · strides_i. Strides are prefix products of the mesh in ascending dim order, so the
// offsets come out strictly ascending.
std::vector<int32_t> MixedRadixOffsets(const std::vector<int64_t>& sizes,
                                       const std::vector<int64_t>& strides) {
  int64_t total = 1;
  for (int64_t size : sizes) total *= size;
  std::vector<int32_t> offsets(static_cast<size_t>(total));
  offsets[0] = 0;
  size_t filled = 1;
  for (size_t d = 0; d < sizes.size(); ++d) {
    for (int64_t c = 1; c < sizes[d]; ++c) {
      const int32_t shift = static_cast<int32_t>(c * strides[d]);
      int32_t* out = offsets.data() + static_cast<size_t>(c) * filled;
      for (size_t k = 0; k < filled; ++k) out[k] = offsets[k] + shift;
    }
    filled *= static_cast<size_t>(sizes[d]);
  }
  return offsets;
}

std::string QuoteMembers(absl::Span<const int32_t> members) {
  if (members.size() <= kMaxQuotedMembers) {
    return absl::StrCat("[", absl::StrJoin(members, ", "), "]");
  }
  return absl::StrCat("[", absl::StrJoin(members.subspan(0, kMaxQuotedMembers), ", "), ", ... (",
                      members.size(), " members)]");
}

// Generated groups: ranks sharing every coordinate outside the group dims. The within-group
// offsets are computed once; group i is bases[i] + offsets, and bases ascend, so the groups are
// already in canonical order (sorted by first member) with ascending members.
void ExpandGenerated(const Generator& generator, int64_t world, GroupKind* kind) {
  const std::vector<int32_t> inner =
      MixedRadixOffsets(generator.inner_sizes, generator.inner_strides);
  const std::vector<int32_t> bases =
      MixedRadixOffsets(generator.outer_sizes, generator.outer_strides);
  const size_t group_size = inner.size();
  kind->ranks.resize(static_cast<size_t>(world));
  kind->group_of_rank.resize(static_cast<size_t>(world));
  kind->offsets.resize(bases.size() + 1);
  int32_t* ranks = kind->ranks.data();
  int32_t* group_of_rank = kind->group_of_rank.data();
  for (size_t g = 0; g < bases.size(); ++g) {
    const int32_t base = bases[g];
    int32_t* out = ranks + g * group_size;
    for (size_t k = 0; k < group_size; ++k) {
      const int32_t rank = base + inner[k];
      out[k] = rank;
      group_of_rank[rank] = static_cast<int32_t>(g);
    }
    kind->offsets[g] = static_cast<int64_t>(g * group_size);
  }
  kind->offsets[bases.size()] = world;
}

// Explicit lists: each keeps its own order; the lists go in canonical order (by first member).
// Normalize has already sorted them and refused overlaps; the sort here only guards callers
// that hand in a topology Normalize did not produce.
void ExpandExplicit(const v1::GroupSpec& group, int64_t world, GroupKind* kind) {
  const auto& lists = group.split_ranks();
  std::vector<int> order(static_cast<size_t>(lists.size()));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return lists[a].ranks(0) < lists[b].ranks(0); });
  size_t total = 0;
  for (const v1::RankList& list : lists) total += static_cast<size_t>(list.ranks_size());
  kind->ranks.reserve(total);
  kind->offsets.reserve(order.size() + 1);
  kind->group_of_rank.assign(static_cast<size_t>(world), -1);
  kind->offsets.push_back(0);
  for (size_t g = 0; g < order.size(); ++g) {
    for (int64_t rank : lists[order[g]].ranks()) {
      kind->ranks.push_back(static_cast<int32_t>(rank));
      kind->group_of_rank[static_cast<size_t>(rank)] = static_cast<int32_t>(g);
    }
    kind->offsets.push_back(static_cast<int64_t>(kind->ranks.size()));
  }
}

// `local: node`: every group lies inside one node (consecutive ranks fill a node).
absl::Status CheckNodeLocal(int kind_index, const GroupKind& kind, int64_t gpus_per_node) {
  for (int64_t g = 0; g < kind.group_count(); ++g) {
    const absl::Span<const int32_t> members = kind.group(g);
    const auto [low, high] = std::minmax_element(members.begin(), members.end());
    if (*low / gpus_per_node != *high / gpus_per_node) {
      return absl::InvalidArgumentError(
          absl::StrCat("groups[", kind_index, "] (", kind.name, "): group ", QuoteMembers(members),
                       " crosses a node boundary (gpus_per_node ", gpus_per_node, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SplitPlan> SplitPlanner::Build(const v1::Topology& topology, int64_t epoch) {
  if (epoch < 1) return absl::InvalidArgumentError(absl::StrCat("epoch must be >= 1, got ", epoch));
  ASSIGN_OR_RETURN(v1::Topology normalized, TopologyValidator::Normalize(topology));

  SplitPlan plan;
  plan.cluster = normalized.cluster();
  plan.epoch = epoch;
  plan.world_size = normalized.world_size();
  plan.method = normalized.method();
  plan.kinds.resize(static_cast<size_t>(normalized.groups_size()));
  for (int i = 0; i < normalized.groups_size(); ++i) {
    const v1::GroupSpec& spec = normalized.groups(i);
    GroupKind& kind = plan.kinds[static_cast<size_t>(i)];
    kind.name = spec.name();
    kind.backend = spec.backend();
    kind.mesh = spec.mesh();
    kind.local = spec.local();
    kind.dims.assign(spec.dims().begin(), spec.dims().end());
    kind.explicit_lists = spec.split_ranks_size() > 0;
    if (kind.explicit_lists) {
      ExpandExplicit(spec, plan.world_size, &kind);
    } else {
      Generator generator;
      if (!MakeGenerator(normalized, spec, &generator)) {
        return absl::InternalError(absl::StrCat("groups[", i, "] (", spec.name(),
                                                "): generator does not fit the normalized mesh"));
      }
      ExpandGenerated(generator, plan.world_size, &kind);
    }
    if (kind.local == "node") {
      RETURN_IF_ERROR(CheckNodeLocal(i, kind, normalized.nodes().gpus_per_node()));
    }
  }
  plan.topology = std::move(normalized);
  plan.fingerprint = PlanFingerprint::Compute(plan);
  return plan;
}

std::vector<int32_t> SplitPlanner::MembersOf(const v1::Topology& normalized, int kind_index,
                                             int64_t rank) {
  if (kind_index < 0 || kind_index >= normalized.groups_size()) return {};
  if (rank < 0 || rank >= normalized.world_size()) return {};
  const v1::GroupSpec& spec = normalized.groups(kind_index);
  if (spec.split_ranks_size() > 0) {
    for (const v1::RankList& list : spec.split_ranks()) {
      if (std::find(list.ranks().begin(), list.ranks().end(), rank) != list.ranks().end()) {
        return std::vector<int32_t>(list.ranks().begin(), list.ranks().end());
      }
    }
    return {};
  }
  Generator generator;
  if (!MakeGenerator(normalized, spec, &generator)) return {};
  // The group's base: `rank` with every group coordinate set to 0.
  int64_t base = rank;
  for (size_t d = 0; d < generator.inner_sizes.size(); ++d) {
    const int64_t coordinate = (rank / generator.inner_strides[d]) % generator.inner_sizes[d];
    base -= coordinate * generator.inner_strides[d];
  }
  std::vector<int32_t> members = MixedRadixOffsets(generator.inner_sizes, generator.inner_strides);
  for (int32_t& member : members) member += static_cast<int32_t>(base);
  return members;
}

}  // namespace splitd::plan
