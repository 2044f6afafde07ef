#include "daemon/core/elastic_policy.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "plan/split_planner.h"
#include "plan/topology_validator.h"

namespace splitd::core {
namespace {

using Action = PolicyDecision::Action;

constexpr size_t kMaxNamedRanks = 5;  // ranks named in one reason before "and N more"

int DimIndex(const v1::Topology& topology, const std::string& name) {
  for (int i = 0; i < topology.dims_size(); ++i) {
    if (topology.dims(i).name() == name) return i;
  }
  return -1;
}

std::vector<int64_t> Sizes(const v1::Topology& topology) {
  std::vector<int64_t> sizes;
  for (const v1::Dim& dim : topology.dims()) sizes.push_back(dim.size());
  return sizes;
}

int64_t Product(const std::vector<int64_t>& sizes) {
  int64_t product = 1;
  for (int64_t size : sizes) product *= size;
  return product;
}

// Coordinates of `rank` over `sizes`, innermost first.
std::vector<int64_t> Coordinates(int64_t rank, const std::vector<int64_t>& sizes) {
  std::vector<int64_t> coords(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    coords[i] = rank % sizes[i];
    rank /= sizes[i];
  }
  return coords;
}

int64_t RankOf(const std::vector<int64_t>& coords, const std::vector<int64_t>& sizes) {
  int64_t rank = 0;
  int64_t stride = 1;
  for (size_t i = 0; i < sizes.size(); ++i) {
    rank += coords[i] * stride;
    stride *= sizes[i];
  }
  return rank;
}

// `base` with new dim sizes and `declared`'s elastic policy, normalized again.
absl::StatusOr<v1::Topology> Resize(const v1::Topology& base, const std::vector<int64_t>& sizes,
                                    const v1::Topology& declared) {
  v1::Topology out = base;
  for (int i = 0; i < out.dims_size(); ++i) out.mutable_dims(i)->set_size(sizes[i]);
  out.set_world_size(0);
  if (out.nodes().count() > 0) out.mutable_nodes()->set_count(0);
  *out.mutable_elastic() = declared.elastic();
  return plan::TopologyValidator::Normalize(out);
}

std::string SizesText(const v1::Topology& topology) {
  std::vector<std::string> parts;
  for (const v1::Dim& dim : topology.dims()) parts.push_back(absl::StrCat(dim.name(), dim.size()));
  return absl::StrJoin(parts, " ");
}

// "rank 5 (m-5) lost, rank 6 (m-6) excluded".
std::string DescribeMissing(const PolicyInput& input, const std::vector<int64_t>& missing) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < missing.size() && i < kMaxNamedRanks; ++i) {
    const std::string& id = input.assignment[static_cast<size_t>(missing[i])];
    parts.push_back(absl::StrCat("rank ", missing[i], " (", id, ") ",
                                 input.excluded.count(id) > 0 ? "excluded" : "lost"));
  }
  if (missing.size() > kMaxNamedRanks) {
    parts.push_back(absl::StrCat("and ", missing.size() - kMaxNamedRanks, " more"));
  }
  return absl::StrJoin(parts, ", ");
}

// Ranks whose members are lost or excluded.
std::vector<int64_t> MissingRanks(const PolicyInput& input) {
  std::vector<int64_t> missing;
  for (size_t rank = 0; rank < input.assignment.size(); ++rank) {
    const std::string& id = input.assignment[rank];
    if (input.lost.count(id) > 0 || input.excluded.count(id) > 0) {
      missing.push_back(static_cast<int64_t>(rank));
    }
  }
  return missing;
}

// Keeps the ranks whose replica coordinate is kept (`keep[c]` is the new coordinate, -1 to
// drop), renumbered; the order of the kept ranks does not change.
PolicyDecision DropReplicas(const PolicyInput& input, int dim, const std::vector<int64_t>& keep,
                            const v1::Topology& topology) {
  const std::vector<int64_t> old_sizes = Sizes(input.current);
  const std::vector<int64_t> new_sizes = Sizes(topology);
  PolicyDecision decision;
  decision.action = Action::kNewEpoch;
  decision.topology = topology;
  decision.assignment.resize(static_cast<size_t>(Product(new_sizes)));
  decision.previous_ranks.resize(decision.assignment.size());
  for (size_t rank = 0; rank < input.assignment.size(); ++rank) {
    std::vector<int64_t> coords = Coordinates(static_cast<int64_t>(rank), old_sizes);
    const int64_t kept = keep[static_cast<size_t>(coords[static_cast<size_t>(dim)])];
    if (kept < 0) continue;
    coords[static_cast<size_t>(dim)] = kept;
    const size_t new_rank = static_cast<size_t>(RankOf(coords, new_sizes));
    decision.assignment[new_rank] = input.assignment[rank];
    decision.previous_ranks[new_rank] = static_cast<int64_t>(rank);
  }
  return decision;
}

// Grows the replica dim to its size in `topology`; the new replicas are filled with spares in
// rank order and the other ranks keep their coordinates.
PolicyDecision AddReplicas(const PolicyInput& input, const v1::Topology& topology,
                           const std::vector<std::string>& spares) {
  const std::vector<int64_t> old_sizes = Sizes(input.current);
  const std::vector<int64_t> new_sizes = Sizes(topology);
  PolicyDecision decision;
  decision.action = Action::kNewEpoch;
  decision.topology = topology;
  decision.assignment.resize(static_cast<size_t>(Product(new_sizes)));
  for (size_t rank = 0; rank < input.assignment.size(); ++rank) {
    const std::vector<int64_t> coords = Coordinates(static_cast<int64_t>(rank), old_sizes);
    decision.assignment[static_cast<size_t>(RankOf(coords, new_sizes))] = input.assignment[rank];
  }
  size_t next = 0;
  for (std::string& slot : decision.assignment) {
    if (slot.empty()) slot = spares[next++];
  }
  return decision;
}

std::vector<std::string> SpareIds(const std::vector<SpareMember>& spares) {
  std::vector<std::string> ids;
  for (const SpareMember& spare : spares) ids.push_back(spare.member_id);
  return ids;
}

// The first spares take the missing ranks; the layout stays as it is. `what` describes them.
PolicyDecision SparesTakeRanks(const PolicyInput& input, const std::vector<int64_t>& missing,
                               const std::string& what, v1::EpochCause cause) {
  PolicyDecision decision;
  decision.action = Action::kNewEpoch;
  decision.cause = cause;
  decision.topology = input.current;
  decision.assignment = input.assignment;
  std::vector<std::string> taken;
  for (size_t i = 0; i < missing.size(); ++i) {
    decision.assignment[static_cast<size_t>(missing[i])] = input.spares[i].member_id;
    taken.push_back(input.spares[i].member_id);
  }
  decision.reason = absl::StrCat(what, "; ", missing.size(), " spare(s) take the rank(s) (",
                                 absl::StrJoin(taken, ", "), "); ", SizesText(input.current),
                                 " and world ", input.assignment.size(), " unchanged");
  return decision;
}

// Lost and excluded ranks: spares take them, or their replicas are dropped.
PolicyDecision HandleMissing(const PolicyInput& input, const std::vector<int64_t>& missing) {
  const std::string what = DescribeMissing(input, missing);
  bool any_lost = false;
  for (int64_t rank : missing) {
    any_lost |= input.lost.count(input.assignment[static_cast<size_t>(rank)]) > 0;
  }
  const v1::EpochCause cause =
      any_lost ? v1::EPOCH_CAUSE_MEMBER_LOST : v1::EPOCH_CAUSE_MEMBER_EXCLUDED;
  if (input.spares.size() >= missing.size()) return SparesTakeRanks(input, missing, what, cause);
  PolicyDecision decision;
  const int64_t waiting = static_cast<int64_t>(missing.size() - input.spares.size());
  const std::string& replica_dim = input.declared.elastic().replica_dim();
  const int dim = DimIndex(input.current, replica_dim);
  if (replica_dim.empty() || dim < 0) {
    decision.action = Action::kDegraded;
    decision.reason = absl::StrCat(what, "; no replica dim to drop and ", input.spares.size(),
                                   " spare(s): waiting for ", waiting, " member(s)");
    return decision;
  }
  const std::vector<int64_t> sizes = Sizes(input.current);
  const int64_t size = sizes[static_cast<size_t>(dim)];
  std::set<int64_t> dropped;
  for (int64_t rank : missing) dropped.insert(Coordinates(rank, sizes)[static_cast<size_t>(dim)]);
  const int64_t new_size = size - static_cast<int64_t>(dropped.size());
  const int64_t min = input.declared.elastic().min();
  if (new_size < std::max<int64_t>(min, 1)) {
    decision.action = Action::kDegraded;
    decision.reason =
        absl::StrCat(what, "; dropping ", dropped.size(), " ", replica_dim,
                     " replica(s) would leave ", replica_dim, "=", new_size, ", below the minimum ",
                     min, ": waiting for ", waiting, " member(s)");
    return decision;
  }
  std::vector<int64_t> new_sizes = sizes;
  new_sizes[static_cast<size_t>(dim)] = new_size;
  absl::StatusOr<v1::Topology> topology = Resize(input.current, new_sizes, input.declared);
  if (!topology.ok()) {
    decision.action = Action::kDegraded;
    decision.reason =
        absl::StrCat(what, "; cannot drop to ", replica_dim, "=", new_size, " (",
                     topology.status().message(), "): waiting for ", waiting, " member(s)");
    return decision;
  }
  std::vector<int64_t> keep(static_cast<size_t>(size), -1);
  int64_t next = 0;
  for (int64_t c = 0; c < size; ++c) {
    if (dropped.count(c) == 0) keep[static_cast<size_t>(c)] = next++;
  }
  decision = DropReplicas(input, dim, keep, *topology);
  decision.cause = cause;
  const int64_t world = static_cast<int64_t>(input.assignment.size());
  const int64_t new_world = static_cast<int64_t>(decision.assignment.size());
  const int64_t freed = world - new_world - static_cast<int64_t>(missing.size());
  decision.reason = absl::StrCat(what, "; ", input.spares.size(), " spare(s): dropped ",
                                 replica_dim, " replica(s) ", absl::StrJoin(dropped, ","), " of ",
                                 size, ": ", replica_dim, " ", size, " -> ", new_size, ", world ",
                                 world, " -> ", new_world, "; ", freed, " member(s) become spares");
  return decision;
}

// Live spares add whole replicas up to elastic.max (or `target`).
PolicyDecision ScaleUp(const PolicyInput& input, int64_t target) {
  const std::string& replica_dim = input.declared.elastic().replica_dim();
  const int dim = DimIndex(input.current, replica_dim);
  if (replica_dim.empty() || dim < 0) return {};
  const std::vector<int64_t> sizes = Sizes(input.current);
  const int64_t size = sizes[static_cast<size_t>(dim)];
  const int64_t world = static_cast<int64_t>(input.assignment.size());
  const int64_t replica = world / size;
  const int64_t spares = static_cast<int64_t>(input.spares.size());
  if (size >= target || spares < replica) return {};
  const int64_t added = std::min(target - size, spares / replica);
  std::vector<int64_t> new_sizes = sizes;
  new_sizes[static_cast<size_t>(dim)] = size + added;
  absl::StatusOr<v1::Topology> topology = Resize(input.current, new_sizes, input.declared);
  if (!topology.ok()) return {};
  PolicyDecision decision = AddReplicas(input, *topology, SpareIds(input.spares));
  decision.cause = v1::EPOCH_CAUSE_SCALED_UP;
  decision.reason = absl::StrCat(spares, " spare(s) live: added ", added, " ", replica_dim,
                                 " replica(s): ", replica_dim, " ", size, " -> ", size + added,
                                 ", world ", world, " -> ", decision.assignment.size());
  return decision;
}

using SetDims = std::map<std::string, int64_t>;

// What Reconfigure carries from step to step: the input as the steps so far leave it (who is
// excluded, who is spare, the layout), the decision so far, the reasons to report, and whether
// the decision only removes ranks (then previous_ranks maps the new ranks to the current ones).
struct Reconfiguration {
  std::string replica_dim;  // the declared one
  PolicyInput step;
  PolicyDecision decision;
  std::vector<std::string> reasons;
  bool only_removes = true;
};

// The checks of a change's dims and method; its exclusions are checked as they are applied.
absl::Status CheckDimsAndMethod(const PolicyInput& input, const v1::Change& change,
                                const SetDims& set_dims) {
  for (const auto& [name, size] : set_dims) {
    if (DimIndex(input.current, name) < 0) {
      std::vector<std::string> names;
      for (const v1::Dim& dim : input.current.dims()) names.push_back(dim.name());
      return absl::InvalidArgumentError(
          absl::StrCat("change.set_dims: unknown dim \"", absl::CHexEscape(name),
                       "\" (dims: ", absl::StrJoin(names, ", "), ")"));
    }
    if (size < 1 || size > plan::kMaxWorldSize) {
      return absl::InvalidArgumentError(absl::StrCat(
          "change.set_dims[\"", name, "\"] must be in [1, ", plan::kMaxWorldSize, "], got ", size));
    }
  }
  if (!change.method().empty() && change.method() != "split" && change.method() != "init") {
    return absl::InvalidArgumentError(
        absl::StrCat("change.method must be \"split\" or \"init\", got \"",
                     absl::CHexEscape(change.method()), "\""));
  }
  return absl::OkStatus();
}

// Excludes in `step` the members of the change's ranks and nodes (ranked or spare) and drops
// them from its spares. Returns the members newly excluded, in the change's order;
// INVALID_ARGUMENT naming the entry for a rank out of range or a node without members.
absl::StatusOr<std::vector<std::string>> ExcludeMembers(const PolicyInput& input,
                                                        const v1::Change& change,
                                                        PolicyInput* step) {
  const int64_t world = static_cast<int64_t>(input.assignment.size());
  std::vector<std::string> newly;
  auto exclude = [&](const std::string& id) {
    if (step->excluded.insert(id).second) newly.push_back(id);
  };
  for (int i = 0; i < change.exclude_ranks_size(); ++i) {
    const int64_t rank = change.exclude_ranks(i);
    if (rank < 0 || rank >= world) {
      return absl::InvalidArgumentError(absl::StrCat("change.exclude_ranks[", i, "] = ", rank,
                                                     " is not a rank of the current epoch (world ",
                                                     world, ")"));
    }
    exclude(input.assignment[static_cast<size_t>(rank)]);
  }
  for (int i = 0; i < change.exclude_nodes_size(); ++i) {
    const std::string& node = change.exclude_nodes(i);
    bool found = false;
    for (size_t rank = 0; rank < input.nodes.size(); ++rank) {
      if (input.nodes[rank] == node) {
        exclude(input.assignment[rank]);
        found = true;
      }
    }
    for (const SpareMember& spare : input.spares) {
      if (spare.node == node) {
        exclude(spare.member_id);
        found = true;
      }
    }
    if (!found) {
      return absl::InvalidArgumentError(absl::StrCat(
          "change.exclude_nodes[", i, "]: no member on node \"", absl::CHexEscape(node), "\""));
    }
  }
  step->spares.erase(std::remove_if(step->spares.begin(), step->spares.end(),
                                    [&](const SpareMember& spare) {
                                      return step->excluded.count(spare.member_id) > 0;
                                    }),
                     step->spares.end());
  return newly;
}

// True when a dim of `set_dims` other than `skip` (nullptr: none) gets a size other than its
// current one.
bool AnySizeChanges(const v1::Topology& current, const SetDims& set_dims, const std::string* skip) {
  const std::vector<int64_t> sizes = Sizes(current);
  for (const auto& [name, size] : set_dims) {
    if (skip != nullptr && name == *skip) continue;
    if (sizes[static_cast<size_t>(DimIndex(current, name))] != size) return true;
  }
  return false;
}

// The declared topology after the change, normalized: new sizes and method; a set replica dim
// is pinned (its max becomes the size, its min at most that).
absl::Status DeclareChange(const PolicyInput& input, const v1::Change& change,
                           const SetDims& set_dims, v1::Topology* declared) {
  const std::string& replica_dim = input.declared.elastic().replica_dim();
  for (const auto& [name, size] : set_dims) {
    const int index = DimIndex(*declared, name);
    if (index >= 0) declared->mutable_dims(index)->set_size(size);
    if (name == replica_dim) {
      declared->mutable_elastic()->set_max(size);
      declared->mutable_elastic()->set_min(std::min(declared->elastic().min(), size));
    }
  }
  if (!change.method().empty()) declared->set_method(change.method());
  declared->set_world_size(0);
  if (declared->nodes().count() > 0) declared->mutable_nodes()->set_count(0);
  ASSIGN_OR_RETURN(*declared, plan::TopologyValidator::Normalize(*declared));
  return absl::OkStatus();
}

// Step 1, exclusions: spares take the ranks, or their replicas are dropped; the spares that
// took ranks and the live members of dropped replicas change who is spare. FAILED_PRECONDITION
// when the cluster would be DEGRADED.
absl::Status ReplaceMissing(const PolicyInput& input, Reconfiguration* r) {
  const std::vector<int64_t> missing = MissingRanks(r->step);
  if (missing.empty()) return absl::OkStatus();
  PolicyDecision handled = HandleMissing(r->step, missing);
  if (handled.action == Action::kDegraded) {
    return absl::FailedPreconditionError(absl::StrCat("refused: ", handled.reason));
  }
  if (handled.previous_ranks.empty()) r->only_removes = false;
  r->decision = std::move(handled);
  r->reasons.push_back(r->decision.reason);
  std::set<std::string> ranked(r->decision.assignment.begin(), r->decision.assignment.end());
  std::vector<SpareMember> spares;
  for (const SpareMember& spare : r->step.spares) {
    if (ranked.count(spare.member_id) == 0) spares.push_back(spare);
  }
  for (size_t rank = 0; rank < input.assignment.size(); ++rank) {
    const std::string& id = input.assignment[rank];
    if (ranked.count(id) == 0 && r->step.excluded.count(id) == 0 && r->step.lost.count(id) == 0) {
      spares.push_back(SpareMember{id, input.nodes[rank], 0, 0});
    }
  }
  r->step.spares = std::move(spares);
  return absl::OkStatus();
}

// Step 2 when a dim other than the replica dim changes: a general re-layout, the live ranked
// members in rank order, then the spares. FAILED_PRECONDITION when too few are live.
absl::Status Relayout(const PolicyInput& input, const SetDims& set_dims,
                      const v1::Topology& declared, Reconfiguration* r) {
  std::vector<int64_t> sizes = Sizes(r->step.current);
  for (const auto& [name, size] : set_dims) {
    sizes[static_cast<size_t>(DimIndex(r->step.current, name))] = size;
  }
  ASSIGN_OR_RETURN(v1::Topology topology, Resize(r->step.current, sizes, declared));
  const int64_t new_world = Product(sizes);
  std::vector<std::string> candidates = r->step.assignment;
  for (const SpareMember& spare : r->step.spares) candidates.push_back(spare.member_id);
  if (static_cast<int64_t>(candidates.size()) < new_world) {
    return absl::FailedPreconditionError(
        absl::StrCat(SizesText(topology), " needs ", new_world, " members; ", candidates.size(),
                     " are live (start members first: they wait as spares)"));
  }
  candidates.resize(static_cast<size_t>(new_world));
  r->decision.action = Action::kNewEpoch;
  r->decision.topology = std::move(topology);
  r->decision.assignment = std::move(candidates);
  r->only_removes = false;
  r->reasons.push_back(absl::StrCat(SizesText(input.current), " -> ",
                                    SizesText(r->decision.topology), ", world ",
                                    input.assignment.size(), " -> ", new_world));
  return absl::OkStatus();
}

// Step 2 shrinking the replica dim (at `dim`) to `target`: the replicas past it are dropped.
absl::Status ShrinkReplicas(int dim, int64_t target, const v1::Topology& declared,
                            Reconfiguration* r) {
  std::vector<int64_t> sizes = Sizes(r->step.current);
  const int64_t size = sizes[static_cast<size_t>(dim)];
  sizes[static_cast<size_t>(dim)] = target;
  ASSIGN_OR_RETURN(v1::Topology topology, Resize(r->step.current, sizes, declared));
  std::vector<int64_t> keep(static_cast<size_t>(size), -1);
  for (int64_t c = 0; c < target; ++c) keep[static_cast<size_t>(c)] = c;
  PolicyDecision dropped = DropReplicas(r->step, dim, keep, topology);
  if (r->only_removes) {
    // Compose with step 1's removal so previous_ranks refer to the current epoch.
    for (int64_t& previous : dropped.previous_ranks) {
      previous = r->decision.previous_ranks[static_cast<size_t>(previous)];
    }
  }
  r->decision = std::move(dropped);
  r->reasons.push_back(absl::StrCat(r->replica_dim, " ", size, " -> ", target, ", world ",
                                    r->step.assignment.size(), " -> ",
                                    r->decision.assignment.size()));
  return absl::OkStatus();
}

// Step 2 growing the replica dim (at `dim`) towards `target`, as far as live spares allow; the
// reasons say how many more members the rest waits for. `world` is the current epoch's.
void GrowReplicas(int dim, int64_t target, int64_t world, Reconfiguration* r) {
  const int64_t size = Sizes(r->step.current)[static_cast<size_t>(dim)];
  PolicyDecision grown = ScaleUp(r->step, target);
  if (grown.action == Action::kNewEpoch) {
    r->decision = std::move(grown);
    r->only_removes = false;
    r->reasons.push_back(r->decision.reason);
  }
  const int64_t reached = grown.action == Action::kNewEpoch
                              ? Sizes(r->decision.topology)[static_cast<size_t>(dim)]
                              : size;
  if (reached < target) {
    r->reasons.push_back(absl::StrCat(r->replica_dim, " target ", target, ": stays at ", reached,
                                      " until ", (target - reached) * (world / size),
                                      " more member(s) join"));
  }
}

// Step 2, dim sizes: a general re-layout when a dim other than the replica dim changes,
// otherwise the replica dim shrinks or grows to its set size.
absl::Status ResizeDims(const PolicyInput& input, const SetDims& set_dims,
                        const v1::Topology& declared, Reconfiguration* r) {
  if (AnySizeChanges(input.current, set_dims, &r->replica_dim)) {
    return Relayout(input, set_dims, declared, r);
  }
  const int replica_index = DimIndex(r->step.current, r->replica_dim);
  auto it = set_dims.find(r->replica_dim);
  if (it == set_dims.end() || replica_index < 0) return absl::OkStatus();
  const int64_t size = Sizes(r->step.current)[static_cast<size_t>(replica_index)];
  const int64_t target = it->second;
  if (target < size) return ShrinkReplicas(replica_index, target, declared, r);
  if (target > size) {
    GrowReplicas(replica_index, target, static_cast<int64_t>(input.assignment.size()), r);
  }
  return absl::OkStatus();
}

}  // namespace

bool ElasticPolicy::DecisionDue(const Occurrence& occurrence) {
  if (!occurrence.assigned) return false;
  return occurrence.members_lost > 0 || occurrence.spare_joined || occurrence.member_returned ||
         (occurrence.rank_missing && !occurrence.degraded);
}

PolicyInput ElasticPolicy::AsOf(const PolicyInput& given, absl::Time now) {
  PolicyInput input = given;
  auto lapsed = [&](const std::string& id) {
    auto it = input.alive_until.find(id);
    return it != input.alive_until.end() && it->second < now;
  };
  for (const std::string& id : input.assignment) {
    if (input.excluded.count(id) == 0 && lapsed(id)) input.lost.insert(id);
  }
  input.spares.erase(
      std::remove_if(input.spares.begin(), input.spares.end(),
                     [&](const SpareMember& spare) { return lapsed(spare.member_id); }),
      input.spares.end());
  return input;
}

PolicyDecision ElasticPolicy::Decide(const PolicyInput& given, absl::Time now) {
  if (given.assignment.empty()) return {};
  const PolicyInput input = AsOf(given, now);
  PolicyDecision decision;
  const std::vector<int64_t> missing = MissingRanks(input);
  if (!missing.empty()) {
    decision = HandleMissing(input, missing);
  } else {
    decision = ScaleUp(input, input.declared.elastic().max());
  }
  if (decision.action == PolicyDecision::Action::kNone && input.degraded) {
    // Everyone is back: form the same layout again.
    decision.action = PolicyDecision::Action::kNewEpoch;
    decision.topology = input.current;
    decision.assignment = input.assignment;
    decision.reason = absl::StrCat("every rank's member is alive again: re-forming world ",
                                   input.assignment.size());
    decision.cause = v1::EPOCH_CAUSE_MEMBERS_RETURNED;
  }
  if (decision.action != PolicyDecision::Action::kNewEpoch) return decision;
  return Planned(std::move(decision), input);
}

PolicyDecision ElasticPolicy::Planned(PolicyDecision decision, const PolicyInput& input) {
  absl::StatusOr<plan::SplitPlan> plan =
      plan::SplitPlanner::Build(decision.topology, input.epoch + 1);
  if (!plan.ok()) {
    decision.action = PolicyDecision::Action::kDegraded;
    decision.reason = absl::StrCat(decision.reason, "; but the new layout does not plan (",
                                   plan.status().message(), ")");
    return decision;
  }
  decision.plan = *std::move(plan);
  return decision;
}

PolicyDecision ElasticPolicy::Retry(const PolicyInput& given, int64_t retries_done,
                                    const std::string& failure, absl::Time now) {
  const int64_t allowed = given.declared.elastic().retries();
  if (given.assignment.empty() || retries_done >= allowed) return {};
  const PolicyInput input = AsOf(given, now);
  if (!MissingRanks(input).empty()) return {};
  constexpr size_t kQuoted = 200;  // of the failure, in the one-line reason
  PolicyDecision decision;
  decision.action = PolicyDecision::Action::kNewEpoch;
  decision.topology = input.current;
  decision.assignment = input.assignment;
  decision.reason = absl::StrCat(
      "epoch ", input.epoch, " FAILED (",
      failure.size() > kQuoted ? absl::StrCat(failure.substr(0, kQuoted), "...") : failure,
      "): retry ", retries_done + 1, " of ", allowed, ", the same layout at world ",
      input.assignment.size());
  decision.cause = v1::EPOCH_CAUSE_RETRIED;
  return Planned(std::move(decision), input);
}

absl::StatusOr<PolicyDecision> ElasticPolicy::Reconfigure(const PolicyInput& given,
                                                          const v1::Change& change,
                                                          v1::Topology* declared, absl::Time now) {
  const PolicyInput input = AsOf(given, now);
  if (input.assignment.empty()) {
    return absl::FailedPreconditionError(
        "the current epoch's ranks are not assigned yet (members are still registering)");
  }
  *declared = input.declared;

  // Check the whole change before using any of it. Maps iterate in key order: deterministic.
  const SetDims set_dims(change.set_dims().begin(), change.set_dims().end());
  RETURN_IF_ERROR(CheckDimsAndMethod(input, change, set_dims));
  Reconfiguration r;
  r.replica_dim = input.declared.elastic().replica_dim();
  r.step = input;
  ASSIGN_OR_RETURN(std::vector<std::string> newly, ExcludeMembers(input, change, &r.step));
  const bool sizes_change = AnySizeChanges(input.current, set_dims, nullptr);
  const bool method_change = !change.method().empty() && change.method() != input.current.method();
  RETURN_IF_ERROR(DeclareChange(input, change, set_dims, declared));
  const bool declared_change = declared->SerializeAsString() != input.declared.SerializeAsString();
  if (!sizes_change && !method_change && newly.empty() && !declared_change) {
    return absl::InvalidArgumentError(
        "change: nothing to change (dim sizes, exclusions and method are as they are)");
  }
  r.step.declared = *declared;

  r.decision.action = Action::kNone;
  r.decision.topology = input.current;
  r.decision.assignment = input.assignment;
  for (size_t rank = 0; rank < r.decision.assignment.size(); ++rank) {
    r.decision.previous_ranks.push_back(static_cast<int64_t>(rank));
  }
  // 1. Exclusions.
  RETURN_IF_ERROR(ReplaceMissing(input, &r));
  r.step.current = r.decision.topology;
  r.step.assignment = r.decision.assignment;
  // 2. Dim sizes.
  RETURN_IF_ERROR(ResizeDims(input, set_dims, *declared, &r));
  // 3. Method.
  PolicyDecision& decision = r.decision;
  if (method_change) {
    decision.topology.set_method(change.method());
    decision.action = Action::kNewEpoch;
    r.reasons.push_back(absl::StrCat("method ", input.current.method(), " -> ", change.method()));
  }
  if (!r.only_removes || decision.action != Action::kNewEpoch ||
      decision.assignment.size() == input.assignment.size()) {
    decision.previous_ranks.clear();
  }
  if (r.reasons.empty()) r.reasons.push_back("declared topology updated");
  decision.excluded = std::move(newly);
  decision.reason = absl::StrCat("reconfigure: ", absl::StrJoin(r.reasons, "; "));
  decision.cause = v1::EPOCH_CAUSE_RECONFIGURED;
  return std::move(r.decision);
}

v1::PlanDiff ElasticPolicy::Diff(const Layout& from, const Layout& to) {
  v1::PlanDiff diff;
  diff.set_from_epoch(from.plan->epoch);
  diff.set_to_epoch(to.plan->epoch);
  diff.set_from_world_size(static_cast<int64_t>(from.assignment.size()));
  diff.set_to_world_size(static_cast<int64_t>(to.assignment.size()));
  auto members = [](const Layout& layout, absl::Span<const int32_t> ranks) {
    std::vector<std::string> ids;
    ids.reserve(ranks.size());
    for (int32_t rank : ranks) ids.push_back(layout.assignment[static_cast<size_t>(rank)]);
    return ids;
  };
  for (const plan::GroupKind& to_kind : to.plan->kinds) {
    v1::KindDiff* kind = diff.add_kinds();
    kind->set_kind(to_kind.name);
    std::multiset<std::vector<std::string>> before;
    for (const plan::GroupKind& from_kind : from.plan->kinds) {
      if (from_kind.name != to_kind.name) continue;
      for (int64_t g = 0; g < from_kind.group_count(); ++g) {
        before.insert(members(from, from_kind.group(g)));
      }
    }
    const int64_t old_count = static_cast<int64_t>(before.size());
    for (int64_t g = 0; g < to_kind.group_count(); ++g) {
      auto it = before.find(members(to, to_kind.group(g)));
      if (it != before.end()) {
        kind->set_kept(kind->kept() + 1);
        before.erase(it);
      } else {
        kind->set_added(kind->added() + 1);
      }
    }
    kind->set_removed(old_count - kind->kept());
  }
  std::map<std::string, std::pair<int64_t, int64_t>> ranks;  // member -> (from, to)
  for (size_t rank = 0; rank < from.assignment.size(); ++rank) {
    ranks[from.assignment[rank]] = {static_cast<int64_t>(rank), -1};
  }
  for (size_t rank = 0; rank < to.assignment.size(); ++rank) {
    auto [it, inserted] = ranks.try_emplace(to.assignment[rank], -1, -1);
    it->second.second = static_cast<int64_t>(rank);
  }
  for (const auto& [id, move] : ranks) {
    if (move.first == move.second) continue;
    v1::MemberMove* out = diff.add_moves();
    out->set_member_id(id);
    out->set_from_rank(move.first);
    out->set_to_rank(move.second);
  }
  return diff;
}

}  // namespace splitd::core
