#include "worker/nccl/color_key.h"

#include <algorithm>
#include <climits>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace splitd::worker {
namespace {

constexpr int kNoColor = -1;  // NCCL_SPLIT_NOCOLOR
constexpr absl::Duration kMaxTimeout = absl::Hours(24);

std::string GroupField(size_t i, const GroupAssignment& group) {
  return absl::StrCat("groups[", i, "] (", group.kind, "/", group.group_index, ")");
}

}  // namespace

absl::Status CheckNcclWorld(const WorldSpec& spec) {
  if (absl::Status status = CheckWorldSpec(spec, kMaxTimeout); !status.ok()) return status;
  if (spec.device_index < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("device_index must be >= 0, got ", spec.device_index));
  }
  return absl::OkStatus();
}

absl::Status CheckNcclGroups(const WorldSpec& spec) {
  if (spec.method != "split" && spec.method != "init") {
    return absl::InvalidArgumentError(
        absl::StrCat("method must be \"split\" or \"init\", got \"", spec.method, "\""));
  }
  for (size_t i = 0; i < spec.groups.size(); ++i) {
    const GroupAssignment& group = spec.groups[i];
    if (group.group_index < 0 || group.group_index > INT_MAX) {
      return absl::InvalidArgumentError(absl::StrCat(GroupField(i, group),
                                                     ".group_index must be in [0, ", INT_MAX,
                                                     "], got ", group.group_index));
    }
  }
  return CheckGroupAssignments(spec);
}

absl::StatusOr<std::vector<ColorKey>> SplitColorKeys(const WorldSpec& spec) {
  std::map<int, std::string> kinds;  // kind_index -> name, ascending
  for (size_t i = 0; i < spec.kinds.size(); ++i) {
    const auto& [kind_index, name] = spec.kinds[i];
    if (!kinds.emplace(kind_index, name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("kinds[", i, "] (", name, ") repeats kind_index ", kind_index));
    }
  }
  std::map<int, const GroupAssignment*> mine;  // kind_index -> this rank's group
  for (size_t i = 0; i < spec.groups.size(); ++i) {
    const GroupAssignment& group = spec.groups[i];
    const auto kind = kinds.find(group.kind_index);
    if (kind == kinds.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(GroupField(i, group), ".kind_index ", group.kind_index,
                       " is not in kinds: every group's kind must be listed there"));
    }
    if (kind->second != group.kind) {
      return absl::InvalidArgumentError(absl::StrCat(GroupField(i, group), ".kind_index ",
                                                     group.kind_index, " is kind \"", kind->second,
                                                     "\" in kinds"));
    }
    if (group.group_index < 0 || group.group_index > INT_MAX) {
      return absl::InvalidArgumentError(absl::StrCat(GroupField(i, group),
                                                     ".group_index must be in [0, ", INT_MAX,
                                                     "], got ", group.group_index));
    }
    if (!mine.emplace(group.kind_index, &group).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(GroupField(i, group), ".kind_index ", group.kind_index, " repeats"));
    }
  }
  std::vector<ColorKey> result;
  result.reserve(kinds.size());
  for (const auto& [kind_index, name] : kinds) {
    ColorKey entry;
    entry.kind_index = kind_index;
    entry.kind = name;
    const auto group = mine.find(kind_index);
    if (group == mine.end()) {
      entry.color = kNoColor;
      entry.key = 0;
    } else {
      entry.color = static_cast<int>(group->second->group_index);
      entry.key = group->second->local_rank;
    }
    result.push_back(std::move(entry));
  }
  return result;
}

absl::StatusOr<std::vector<int>> ShrinkExcludedRanks(const WorldSpec& spec, int held_world_size,
                                                     int held_rank,
                                                     const std::vector<int32_t>& previous_ranks) {
  if (static_cast<int64_t>(previous_ranks.size()) != spec.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("previous_ranks must hold one rank per rank of the new world (",
                     spec.world_size, "), got ", previous_ranks.size()));
  }
  std::vector<bool> kept(static_cast<size_t>(std::max(held_world_size, 0)), false);
  for (size_t i = 0; i < previous_ranks.size(); ++i) {
    const int32_t previous = previous_ranks[i];
    if (previous < 0 || previous >= held_world_size) {
      return absl::InvalidArgumentError(absl::StrCat("previous_ranks[", i, "] must be in [0, ",
                                                     held_world_size, "), got ", previous));
    }
    if (i > 0 && previous <= previous_ranks[i - 1]) {
      return absl::InvalidArgumentError(absl::StrCat("previous_ranks must be ascending, got ",
                                                     previous, " after ", previous_ranks[i - 1]));
    }
    kept[static_cast<size_t>(previous)] = true;
  }
  const int32_t mine = previous_ranks[static_cast<size_t>(spec.rank)];
  if (mine != held_rank) {
    return absl::InvalidArgumentError(absl::StrCat("previous_ranks[", spec.rank, "] is ", mine,
                                                   ", not this rank's held rank ", held_rank));
  }
  std::vector<int> excluded;
  for (int r = 0; r < held_world_size; ++r) {
    if (!kept[static_cast<size_t>(r)]) excluded.push_back(r);
  }
  if (excluded.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("previous_ranks removes no rank of the held world of ", held_world_size));
  }
  return excluded;
}

}  // namespace splitd::worker
