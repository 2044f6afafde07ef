#ifndef SPLITD_PLAN_SPLIT_PLAN_H_
#define SPLITD_PLAN_SPLIT_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "splitd/v1/topology.pb.h"

namespace splitd::plan {

// Every group of one kind, expanded, in canonical order (groups sorted by their first member;
// members of a generated group ascending, members of an explicit list in the order given).
// Immutable once built; safe to read from many threads.
struct GroupKind {
  std::string name;
  std::string backend;            // e.g. "cpu:gloo,cuda:nccl"
  std::string mesh;               // "" = the topology's main dims
  std::string local;              // "" or "node"
  std::vector<std::string> dims;  // generator; empty for explicit lists
  bool explicit_lists = false;

  // Group i holds ranks[offsets[i] .. offsets[i + 1]); offsets.size() == group_count() + 1.
  std::vector<int32_t> ranks;
  std::vector<int64_t> offsets;
  // For each rank of the world: the index of its group of this kind, or -1 if it takes no part.
  std::vector<int32_t> group_of_rank;

  int64_t group_count() const { return static_cast<int64_t>(offsets.size()) - 1; }
  absl::Span<const int32_t> group(int64_t index) const {
    return absl::MakeConstSpan(ranks.data() + offsets[index],
                               static_cast<size_t>(offsets[index + 1] - offsets[index]));
  }
};

// One immutable, versioned split plan: (cluster, epoch), the normalized topology it came from,
// every group kind expanded, and the fingerprint over its canonical encoding.
struct SplitPlan {
  std::string cluster;
  int64_t epoch = 0;
  int64_t world_size = 0;
  std::string method;            // "split" or "init"
  v1::Topology topology;         // normalized (TopologyValidator::Normalize)
  std::vector<GroupKind> kinds;  // in the topology's group order
  std::string fingerprint;       // lowercase hex SHA-256 (PlanFingerprint)

  // The kind named `name`, or nullptr.
  const GroupKind* FindKind(const std::string& name) const {
    for (const GroupKind& kind : kinds) {
      if (kind.name == name) return &kind;
    }
    return nullptr;
  }
};

}  // namespace splitd::plan

#endif  // SPLITD_PLAN_SPLIT_PLAN_H_
