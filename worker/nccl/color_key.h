#ifndef SPLITD_WORKER_NCCL_COLOR_KEY_H_
#define SPLITD_WORKER_NCCL_COLOR_KEY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/group_builder.h"
#include "worker/world_spec_checks.h"

namespace splitd::worker {

// What this rank passes to ncclCommSplit for one group kind. ncclCommSplit is collective over
// the whole parent, so every rank issues one split per kind, in the same (kind_index) order,
// with NCCL_SPLIT_NOCOLOR (-1) and key 0 for kinds it takes no part in.
struct ColorKey {
  int kind_index = 0;
  std::string kind;
  int color = 0;  // the group index within the kind, or NCCL_SPLIT_NOCOLOR
  int key = 0;    // the local rank: NCCL orders the child's ranks by key
};

// One ColorKey per entry of `spec.kinds`, by kind_index ascending. INVALID_ARGUMENT when the
// kinds repeat a kind_index, or a group's kind is not listed in `spec.kinds` (under that name),
// or a group index does not fit a color (0 to INT_MAX). Pure; expects CheckNcclGroups to pass.
absl::StatusOr<std::vector<ColorKey>> SplitColorKeys(const WorldSpec& spec);

// The world part of a spec: world_size >= 1, rank within it, timeout in (0, 24h],
// device_index >= 0. INVALID_ARGUMENT naming the field otherwise.
absl::Status CheckNcclWorld(const WorldSpec& spec);

// The groups part of a spec: a known method ("split" or "init"), at most one group per kind,
// members inside the world without repeats, local_rank pointing at this rank, group indexes
// that fit an NCCL color. INVALID_ARGUMENT naming the field otherwise.
absl::Status CheckNcclGroups(const WorldSpec& spec);

// What this rank passes to ncclCommShrink to go from the held world (`held_world_size` ranks,
// this rank `held_rank` there) to `spec`'s world, where new rank r was `previous_ranks[r]`: the
// held ranks `previous_ranks` leaves out, ascending. INVALID_ARGUMENT when `previous_ranks` has
// not one entry per new rank, is not strictly ascending inside the held world, does not map
// `spec.rank` to `held_rank`, or removes nothing. Pure; expects CheckNcclWorld to pass.
absl::StatusOr<std::vector<int>> ShrinkExcludedRanks(const WorldSpec& spec, int held_world_size,
                                                     int held_rank,
                                                     const std::vector<int32_t>& previous_ranks);

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_NCCL_COLOR_KEY_H_
