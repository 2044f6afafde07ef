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

std::vector<size_t> KindOrder(const std::vector<GroupAssignment>& groups) {
  std::vector<size_t> order(groups.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&groups](size_t a, size_t b) {
    return groups[a].kind_index < groups[b].kind_index;
  });
  return order;
}

absl::Status CheckNcclWorld(const WorldSpec& spec) {
  if (spec.world_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("world_size must be >= 1, got ", spec.world_size));
  }
  if (spec.rank < 0 || spec.rank >= spec.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank must be in [0, ", spec.world_size, "), got ", spec.rank));
  }
  if (spec.timeout <= absl::ZeroDuration() || spec.timeout > kMaxTimeout) {
    return absl::InvalidArgumentError(absl::StrCat("timeout must be in (0, ",
                                                   absl::FormatDuration(kMaxTimeout), "], got ",
                                                   absl::FormatDuration(spec.timeout)));
  }
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
  std::set<int> kind_indexes;
  for (size_t i = 0; i < spec.groups.size(); ++i) {
    const GroupAssignment& group = spec.groups[i];
    const std::string field = GroupField(i, group);
    if (!kind_indexes.insert(group.kind_index).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".kind_index ", group.kind_index, " repeats: one group per kind per rank"));
    }
    if (group.group_index < 0 || group.group_index > INT_MAX) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".group_index must be in [0, ",
                                                     INT_MAX, "], got ", group.group_index));
    }
    if (group.members.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".members is empty"));
    }
    if (group.local_rank < 0 || group.local_rank >= static_cast<int>(group.members.size())) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".local_rank must be in [0, ",
                                                     group.members.size(), "), got ",
                                                     group.local_rank));
    }
    if (group.members[static_cast<size_t>(group.local_rank)] != spec.rank) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".members[", group.local_rank, "] is ",
          group.members[static_cast<size_t>(group.local_rank)], ", not this rank ", spec.rank));
    }
    std::set<int32_t> seen;
    for (int32_t member : group.members) {
      if (member < 0 || member >= spec.world_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, ".members holds ", member, ", outside the world [0, ", spec.world_size, ")"));
      }
      if (!seen.insert(member).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".members holds ", member, " twice"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ColorKey>> SplitColorKeys(const WorldSpec& spec) {
  std::map<int, std::string> kinds;  // kind_index -> name, ascending
  for (size_t i = 0; i < spec.kinds.size(); ++i) {
    const auto& [kind_index, name] = spec.kinds[i];
    if (!kinds.emplace(kind_index, name).second) {
      return absl::InvalidArgumentError(absl::StrCat("kinds[", i, "] (", name, ") repeats kind_index ",
                                                     kind_index));
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
                                                     group.kind_index, " is kind \"",
                                                     kind->second, "\" in kinds"));
    }
    if (group.group_index < 0 || group.group_index > INT_MAX) {
      return absl::InvalidArgumentError(absl::StrCat(GroupField(i, group),
                                                     ".group_index must be in [0, ", INT_MAX,
                                                     "], got ", group.group_index));
    }
    if (!mine.emplace(group.kind_index, &group).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          GroupField(i, group), ".kind_index ", group.kind_index, " repeats"));
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

}  // namespace splitd::worker
