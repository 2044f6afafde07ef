#include "plan/topology_validator.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"

namespace splitd::plan {
namespace {

using google::protobuf::RepeatedPtrField;

constexpr int64_t kMaxDimSize = int64_t{1} << 20;
constexpr int64_t kMaxGpusPerNode = int64_t{1} << 20;
constexpr int64_t kMaxNodeCount = int64_t{1} << 20;
// User-supplied strings are echoed in messages at most this long.
constexpr size_t kMaxQuotedLength = 80;

constexpr absl::string_view kMethodSplit = "split";
constexpr absl::string_view kMethodInit = "init";
constexpr absl::string_view kDefaultBackend = "cpu:gloo";
constexpr absl::string_view kLocalNode = "node";
constexpr absl::string_view kAllowedBackendEntries[] = {"cpu:gloo", "cuda:nccl"};

template <typename... Args>
absl::Status Invalid(const Args&... args) {
  return absl::InvalidArgumentError(absl::StrCat(args...));
}

// Quotes a user-supplied string for a message: escaped, and truncated so that a huge or binary
// value cannot blow up the reply.
std::string Quote(absl::string_view value) {
  if (value.size() > kMaxQuotedLength) {
    return absl::StrCat("\"", absl::CHexEscape(value.substr(0, kMaxQuotedLength)), "\"... (",
                        value.size(), " bytes)");
  }
  return absl::StrCat("\"", absl::CHexEscape(value), "\"");
}

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

// Cluster, dim, mesh and group names: 1..63 of [A-Za-z0-9._-], starting with a letter or digit.
absl::Status ValidateName(absl::string_view field, absl::string_view name) {
  if (name.empty()) return Invalid(field, " must not be empty");
  if (static_cast<int64_t>(name.size()) > kMaxNameLength) {
    return Invalid(field, " must be at most ", kMaxNameLength, " characters, got ", name.size(),
                   " (", Quote(name), ")");
  }
  if (!absl::ascii_isalnum(static_cast<unsigned char>(name[0]))) {
    return Invalid(field, " must start with a letter or digit, got ", Quote(name));
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return Invalid(field, " may hold only letters, digits, '.', '_' and '-', got ", Quote(name));
    }
  }
  return absl::OkStatus();
}

// A backend string: comma-separated, distinct entries out of kAllowedBackendEntries.
absl::Status ValidateBackend(absl::string_view field, absl::string_view backend) {
  std::vector<absl::string_view> seen;
  const std::string prefix = absl::StrCat(field, ": invalid backend string ", Quote(backend), ": ");
  int index = 0;
  for (absl::string_view entry : absl::StrSplit(backend, ',')) {
    if (entry.empty()) return Invalid(prefix, "entry ", index, " is empty");
    const size_t colon = entry.find(':');
    if (colon == absl::string_view::npos || colon == 0 || colon + 1 == entry.size()) {
      return Invalid(prefix, "entry ", Quote(entry), " is not <device>:<backend>");
    }
    if (std::find(std::begin(kAllowedBackendEntries), std::end(kAllowedBackendEntries), entry) ==
        std::end(kAllowedBackendEntries)) {
      return Invalid(prefix, "unsupported entry ", Quote(entry),
                     " (allowed: ", absl::StrJoin(kAllowedBackendEntries, ", "), ")");
    }
    if (std::find(seen.begin(), seen.end(), entry) != seen.end()) {
      return Invalid(prefix, "duplicate entry ", Quote(entry));
    }
    seen.push_back(entry);
    ++index;
  }
  return absl::OkStatus();
}

// Checks the dims of one mesh (`field` is "dims" or "meshes[i].dims") and returns their product.
absl::StatusOr<int64_t> ValidateDims(const std::string& field,
                                     const RepeatedPtrField<v1::Dim>& dims) {
  if (dims.empty()) return Invalid(field, " must not be empty");
  // Bounded before anything else looks at the entries, so a huge document is refused in O(1).
  if (dims.size() > kMaxDimsPerMesh) {
    return Invalid(field, " has ", dims.size(), " entries, at most ", kMaxDimsPerMesh,
                   " are allowed");
  }
  for (int i = 0; i < dims.size(); ++i) {
    const v1::Dim& dim = dims[i];
    const std::string entry = absl::StrCat(field, "[", i, "]");
    RETURN_IF_ERROR(ValidateName(absl::StrCat(entry, ".name"), dim.name()));
    for (int j = 0; j < i; ++j) {
      if (dims[j].name() == dim.name()) {
        return Invalid(entry, ".name: duplicate dim ", Quote(dim.name()), " (also ", field, "[", j,
                       "])");
      }
    }
    if (dim.size() < 1) return Invalid(entry, ".size must be >= 1, got ", dim.size());
    if (dim.size() > kMaxDimSize) {
      return Invalid(entry, ".size must be <= ", kMaxDimSize, ", got ", dim.size());
    }
  }
  // Every size is <= 2^20 and the running product is checked at every step, so it never
  // exceeds 2^40 and cannot overflow.
  int64_t product = 1;
  for (int i = 0; i < dims.size(); ++i) {
    product *= dims[i].size();
    if (product > kMaxWorldSize) {
      return Invalid(field, ": world size (product of sizes) exceeds ", kMaxWorldSize,
                     ": the first ", i + 1, " sizes alone multiply to ", product);
    }
  }
  return product;
}

absl::Status ValidateWorldSizeField(int64_t world_size, int64_t product) {
  if (world_size == 0) return absl::OkStatus();
  if (world_size < 0 || world_size > kMaxWorldSize) {
    return Invalid("world_size must be in [1, ", kMaxWorldSize, "] (or 0 to derive it), got ",
                   world_size);
  }
  if (world_size != product) {
    return Invalid("world_size ", world_size, " does not match the product of dims sizes, ",
                   product);
  }
  return absl::OkStatus();
}

absl::Status ValidateMeshes(const RepeatedPtrField<v1::Mesh>& meshes, int64_t world) {
  if (meshes.size() > kMaxMeshes) {
    return Invalid("meshes has ", meshes.size(), " entries, at most ", kMaxMeshes, " are allowed");
  }
  for (int i = 0; i < meshes.size(); ++i) {
    const std::string field = absl::StrCat("meshes[", i, "]");
    RETURN_IF_ERROR(ValidateName(absl::StrCat(field, ".name"), meshes[i].name()));
    for (int j = 0; j < i; ++j) {
      if (meshes[j].name() == meshes[i].name()) {
        return Invalid(field, ".name: duplicate mesh name ", Quote(meshes[i].name()),
                       " (also meshes[", j, "])");
      }
    }
    const std::string dims_field = absl::StrCat(field, ".dims");
    ASSIGN_OR_RETURN(const int64_t product, ValidateDims(dims_field, meshes[i].dims()));
    if (product != world) {
      return Invalid(dims_field, ": world size ", product, " differs from the world size of dims, ",
                     world);
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateNodes(const v1::Nodes& nodes, int64_t world) {
  const int64_t gpus = nodes.gpus_per_node();
  const int64_t count = nodes.count();
  if (gpus < 0) return Invalid("nodes.gpus_per_node must be >= 0, got ", gpus);
  if (gpus > kMaxGpusPerNode) {
    return Invalid("nodes.gpus_per_node must be <= ", kMaxGpusPerNode, ", got ", gpus);
  }
  if (count < 0) return Invalid("nodes.count must be >= 0, got ", count);
  if (count > kMaxNodeCount) {
    return Invalid("nodes.count must be <= ", kMaxNodeCount, ", got ", count);
  }
  if (count > 0) {
    if (gpus == 0) {
      return Invalid("nodes.count ", count, " requires nodes.gpus_per_node > 0");
    }
    // Both factors are <= 2^20: no overflow.
    if (count * gpus != world) {
      return Invalid("nodes.count * nodes.gpus_per_node = ", count, " * ", gpus, " = ",
                     count * gpus, " does not match world size ", world);
    }
  } else if (gpus > 0 && world >= gpus && world % gpus != 0) {
    return Invalid("nodes.gpus_per_node ", gpus, " does not divide world size ", world);
  }
  return absl::OkStatus();
}

absl::Status ValidateValidation(v1::Validation* validation) {
  const int64_t elements = validation->allreduce_elements();
  if (elements == 0) {
    validation->set_allreduce_elements(kDefaultAllreduceElements);
  } else if (elements < 1 || elements > kMaxAllreduceElements) {
    return Invalid("validation.allreduce_elements must be in [1, ", kMaxAllreduceElements,
                   "] (or 0 for the default ", kDefaultAllreduceElements, "), got ", elements);
  }
  const int64_t bytes = validation->bandwidth_bytes();
  if (bytes < 0 || bytes > kMaxBandwidthBytes) {
    return Invalid("validation.bandwidth_bytes must be in [0, ", kMaxBandwidthBytes, "], got ",
                   bytes);
  }
  return absl::OkStatus();
}

// Fills the elastic defaults and checks them against the main mesh.
absl::Status ValidateElastic(v1::Topology* topology) {
  v1::Elastic* elastic = topology->mutable_elastic();
  const v1::Dim* replica = nullptr;
  if (elastic->replica_dim().empty()) {
    for (const v1::Dim& dim : topology->dims()) {
      if (dim.name() == kDefaultReplicaDim) {
        elastic->set_replica_dim(std::string(kDefaultReplicaDim));
      }
    }
  }
  if (!elastic->replica_dim().empty()) {
    for (const v1::Dim& dim : topology->dims()) {
      if (dim.name() == elastic->replica_dim()) replica = &dim;
    }
    if (replica == nullptr) {
      std::vector<absl::string_view> names;
      for (const v1::Dim& dim : topology->dims()) names.push_back(dim.name());
      return Invalid("elastic.replica_dim: unknown dim ", Quote(elastic->replica_dim()),
                     " (dims: ", absl::StrJoin(names, ", "), ")");
    }
    const int64_t size = replica->size();
    if (elastic->min() == 0) elastic->set_min(1);
    if (elastic->max() == 0) elastic->set_max(size);
    if (elastic->min() < 1 || elastic->min() > size) {
      return Invalid("elastic.min must be in [1, ", size, "] (the size of ", elastic->replica_dim(),
                     "), got ", elastic->min());
    }
    if (elastic->max() < size || elastic->max() > kMaxDimSize) {
      return Invalid("elastic.max must be in [", size, ", ", kMaxDimSize,
                     "] (at least the size of ", elastic->replica_dim(), "), got ", elastic->max());
    }
  } else if (elastic->min() != 0 || elastic->max() != 0) {
    return Invalid(
        "elastic.min and elastic.max need a replica dim (elastic.replica_dim, or a dim "
        "named dp)");
  }
  if (elastic->heartbeat_interval_ms() == 0) {
    elastic->set_heartbeat_interval_ms(kDefaultHeartbeatIntervalMs);
  }
  if (elastic->heartbeat_interval_ms() < kMinHeartbeatIntervalMs ||
      elastic->heartbeat_interval_ms() > kMaxHeartbeatIntervalMs) {
    return Invalid("elastic.heartbeat_interval_ms must be in [", kMinHeartbeatIntervalMs, ", ",
                   kMaxHeartbeatIntervalMs, "], got ", elastic->heartbeat_interval_ms());
  }
  if (elastic->lease_timeout_ms() == 0) {
    elastic->set_lease_timeout_ms(5 * elastic->heartbeat_interval_ms());
  }
  if (elastic->lease_timeout_ms() < elastic->heartbeat_interval_ms() ||
      elastic->lease_timeout_ms() > kMaxLeaseTimeoutMs) {
    return Invalid("elastic.lease_timeout_ms must be in [", elastic->heartbeat_interval_ms(),
                   " (the heartbeat interval), ", kMaxLeaseTimeoutMs, "], got ",
                   elastic->lease_timeout_ms());
  }
  // Kept unset when not given, so documents that predate the field normalize as before.
  if (elastic->has_stream_grace_ms() &&
      (elastic->stream_grace_ms() < 0 ||
       elastic->stream_grace_ms() > elastic->lease_timeout_ms())) {
    return Invalid("elastic.stream_grace_ms must be in [0, ", elastic->lease_timeout_ms(),
                   "] (the lease timeout), got ", elastic->stream_grace_ms());
  }
  if (elastic->retries() < 0 || elastic->retries() > kMaxRetries) {
    return Invalid("elastic.retries must be in [0, ", kMaxRetries, "], got ", elastic->retries());
  }
  if (elastic->retry_delay_ms() < 0 || elastic->retry_delay_ms() > kMaxRetryDelayMs) {
    return Invalid("elastic.retry_delay_ms must be in [0, ", kMaxRetryDelayMs, "], got ",
                   elastic->retry_delay_ms());
  }
  return absl::OkStatus();
}

absl::Status ValidateReadiness(const v1::Topology& topology) {
  const std::string& readiness = topology.readiness();
  if (readiness.empty() || readiness == kReadinessAgent || readiness == kReadinessWorkload) {
    return absl::OkStatus();
  }
  return Invalid("readiness must be \"agent\" or \"workload\" (or empty for \"agent\"), got ",
                 Quote(readiness));
}

absl::Status ValidateDeadlines(const v1::Deadlines& deadlines) {
  const std::pair<absl::string_view, int64_t> fields[] = {
      {"bootstrap_ms", deadlines.bootstrap_ms()},
      {"split_ms", deadlines.split_ms()},
      {"validate_ms", deadlines.validate_ms()},
      {"workload_ms", deadlines.workload_ms()},
  };
  for (const auto& [name, value] : fields) {
    if (value < 0) return Invalid("deadlines.", name, " must be >= 0, got ", value);
    if (value > kMaxDeadlineMs) {
      return Invalid("deadlines.", name, " must be <= ", kMaxDeadlineMs, " (a day), got ", value);
    }
  }
  return absl::OkStatus();
}

// The dims a group's `mesh` refers to, or nullptr for an unknown mesh.
const RepeatedPtrField<v1::Dim>* MeshDims(const v1::Topology& topology, const std::string& mesh) {
  if (mesh.empty()) return &topology.dims();
  for (const v1::Mesh& candidate : topology.meshes()) {
    if (candidate.name() == mesh) return &candidate.dims();
  }
  return nullptr;
}

absl::Status ValidateGeneratedGroup(const std::string& field, const v1::Topology& topology,
                                    const v1::GroupSpec& group) {
  const RepeatedPtrField<v1::Dim>* mesh_dims = MeshDims(topology, group.mesh());
  if (mesh_dims == nullptr) {
    std::vector<absl::string_view> names;
    for (const v1::Mesh& mesh : topology.meshes()) names.push_back(mesh.name());
    return Invalid(field, ".mesh: unknown mesh ", Quote(group.mesh()),
                   " (meshes: ", names.empty() ? "none" : absl::StrJoin(names, ", "), ")");
  }
  if (group.dims_size() > kMaxDimsPerMesh) {
    return Invalid(field, ".dims has ", group.dims_size(), " entries, at most ", kMaxDimsPerMesh,
                   " are allowed");
  }
  for (int j = 0; j < group.dims_size(); ++j) {
    const std::string& name = group.dims(j);
    const bool known = std::any_of(mesh_dims->begin(), mesh_dims->end(),
                                   [&](const v1::Dim& dim) { return dim.name() == name; });
    if (!known) {
      std::vector<absl::string_view> names;
      for (const v1::Dim& dim : *mesh_dims) names.push_back(dim.name());
      return Invalid(field, ".dims[", j, "]: unknown dim ", Quote(name), " in mesh ",
                     Quote(group.mesh()), " (dims: ", absl::StrJoin(names, ", "), ")");
    }
    for (int k = 0; k < j; ++k) {
      if (group.dims(k) == name) {
        return Invalid(field, ".dims[", j, "]: duplicate dim ", Quote(name), " (also ", field,
                       ".dims[", k, "])");
      }
    }
  }
  return absl::OkStatus();
}

// Checks the explicit lists of one kind: non-empty, ranks in [0, world), no rank twice in the
// kind. `owner` maps a rank to the id of the last list that held it; ids grow across kinds, and
// `first_id` is the id of this kind's first list, so the map never needs clearing.
absl::Status ValidateExplicitGroup(const std::string& field, const v1::GroupSpec& group,
                                   int64_t world, std::vector<int32_t>* owner, int32_t* next_id) {
  if (!group.mesh().empty()) {
    return Invalid(field, ".mesh must be empty when split_ranks is given, got ",
                   Quote(group.mesh()));
  }
  // Lists are non-empty and disjoint, so there can be at most `world` of them.
  if (group.split_ranks_size() > world) {
    return Invalid(field, ".split_ranks has ", group.split_ranks_size(),
                   " lists, more than world size ", world);
  }
  if (owner->empty()) owner->assign(static_cast<size_t>(world), -1);
  const int32_t first_id = *next_id;
  for (int j = 0; j < group.split_ranks_size(); ++j) {
    const auto& ranks = group.split_ranks(j).ranks();
    const std::string list = absl::StrCat(field, ".split_ranks[", j, "]");
    if (ranks.empty()) return Invalid(list, " must not be empty");
    const int32_t id = (*next_id)++;
    for (int k = 0; k < ranks.size(); ++k) {
      const int64_t rank = ranks[k];
      if (rank < 0 || rank >= world) {
        return Invalid(list, "[", k, "] must be in [0, ", world, "), got ", rank);
      }
      int32_t& holder = (*owner)[static_cast<size_t>(rank)];
      if (holder == id) {
        return Invalid(list, "[", k, "]: rank ", rank, " is repeated in the same list");
      }
      if (holder >= first_id) {
        return Invalid(list, "[", k, "]: rank ", rank, " is already in ", field, ".split_ranks[",
                       holder - first_id, "] (lists of one kind must not overlap)");
      }
      holder = id;
    }
  }
  return absl::OkStatus();
}

// Canonical order of explicit lists: by first member. First members are distinct (the lists do
// not overlap), so the order is total.
void SortListsByFirstMember(v1::GroupSpec* group) {
  auto* lists = group->mutable_split_ranks();
  auto first_less = [](const v1::RankList& a, const v1::RankList& b) {
    return a.ranks(0) < b.ranks(0);
  };
  if (std::is_sorted(lists->begin(), lists->end(), first_less)) return;
  std::vector<int> order(static_cast<size_t>(lists->size()));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return first_less((*lists)[a], (*lists)[b]); });
  RepeatedPtrField<v1::RankList> sorted;
  sorted.Reserve(lists->size());
  for (int index : order) sorted.Add()->Swap(&(*lists)[index]);
  lists->Swap(&sorted);
}

absl::Status ValidateGroups(v1::Topology* topology) {
  auto* groups = topology->mutable_groups();
  if (groups->size() > kMaxGroupKinds) {
    return Invalid("groups has ", groups->size(), " entries, at most ", kMaxGroupKinds,
                   " are allowed");
  }
  if (groups->empty()) {
    for (const v1::Dim& dim : topology->dims()) {
      v1::GroupSpec* group = groups->Add();
      group->set_name(dim.name());
      group->add_dims(dim.name());
    }
  }
  const int64_t world = topology->world_size();
  std::vector<int32_t> owner;  // allocated on the first explicit kind only
  int32_t next_id = 0;
  for (int i = 0; i < groups->size(); ++i) {
    v1::GroupSpec& group = (*groups)[i];
    const std::string field = absl::StrCat("groups[", i, "]");
    RETURN_IF_ERROR(ValidateName(absl::StrCat(field, ".name"), group.name()));
    for (int j = 0; j < i; ++j) {
      if ((*groups)[j].name() == group.name()) {
        return Invalid(field, ".name: duplicate group name ", Quote(group.name()), " (also groups[",
                       j, "])");
      }
    }
    const bool has_dims = group.dims_size() > 0;
    const bool has_lists = group.split_ranks_size() > 0;
    if (has_dims == has_lists) {
      return Invalid(field, ": exactly one of dims and split_ranks must be given, got ",
                     has_dims ? "both" : "neither");
    }
    if (!group.local().empty() && group.local() != kLocalNode) {
      return Invalid(field, ".local must be \"\" or \"node\", got ", Quote(group.local()));
    }
    if (group.local() == kLocalNode && topology->nodes().gpus_per_node() == 0) {
      return Invalid(field, ".local \"node\" requires nodes.gpus_per_node > 0");
    }
    if (group.backend().empty()) {
      group.set_backend(topology->backend());
    } else {
      RETURN_IF_ERROR(ValidateBackend(absl::StrCat(field, ".backend"), group.backend()));
    }
    if (has_dims) {
      RETURN_IF_ERROR(ValidateGeneratedGroup(field, *topology, group));
    } else {
      RETURN_IF_ERROR(ValidateExplicitGroup(field, group, world, &owner, &next_id));
      SortListsByFirstMember(&group);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::Topology> TopologyValidator::Normalize(const v1::Topology& topology) {
  RETURN_IF_ERROR(ValidateName("cluster", topology.cluster()));
  ASSIGN_OR_RETURN(const int64_t world, ValidateDims("dims", topology.dims()));
  RETURN_IF_ERROR(ValidateWorldSizeField(topology.world_size(), world));
  RETURN_IF_ERROR(ValidateMeshes(topology.meshes(), world));
  RETURN_IF_ERROR(ValidateNodes(topology.nodes(), world));

  v1::Topology normalized = topology;
  normalized.set_world_size(world);
  if (normalized.method().empty()) normalized.set_method(std::string(kMethodSplit));
  if (normalized.method() != kMethodSplit && normalized.method() != kMethodInit) {
    return Invalid("method must be \"split\" or \"init\", got ", Quote(normalized.method()));
  }
  if (normalized.backend().empty()) {
    normalized.set_backend(std::string(kDefaultBackend));
  } else {
    RETURN_IF_ERROR(ValidateBackend("backend", normalized.backend()));
  }
  RETURN_IF_ERROR(ValidateValidation(normalized.mutable_validation()));
  RETURN_IF_ERROR(ValidateGroups(&normalized));
  RETURN_IF_ERROR(ValidateElastic(&normalized));
  RETURN_IF_ERROR(ValidateReadiness(normalized));
  RETURN_IF_ERROR(ValidateDeadlines(normalized.deadlines()));
  return normalized;
}

}  // namespace splitd::plan
