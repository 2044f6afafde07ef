#include "worker/world_spec_checks.h"

#include <algorithm>
#include <cstdint>
#include <set>

#include "absl/strings/str_cat.h"

namespace splitd::worker {

absl::Status CheckWorldSpec(const WorldSpec& spec, absl::Duration max_timeout) {
  if (spec.world_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("world_size must be >= 1, got ", spec.world_size));
  }
  if (spec.rank < 0 || spec.rank >= spec.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank must be in [0, ", spec.world_size, "), got ", spec.rank));
  }
  if (spec.timeout <= absl::ZeroDuration() || spec.timeout > max_timeout) {
    return absl::InvalidArgumentError(absl::StrCat("timeout must be in (0, ",
                                                   absl::FormatDuration(max_timeout), "], got ",
                                                   absl::FormatDuration(spec.timeout)));
  }
  return absl::OkStatus();
}

absl::Status CheckGroupAssignments(const WorldSpec& spec) {
  std::set<int> kind_indexes;
  for (size_t i = 0; i < spec.groups.size(); ++i) {
    const GroupAssignment& group = spec.groups[i];
    const std::string field =
        absl::StrCat("groups[", i, "] (", group.kind, "/", group.group_index, ")");
    if (!kind_indexes.insert(group.kind_index).second) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".kind_index ", group.kind_index,
                                                     " repeats: one group per kind per rank"));
    }
    if (group.members.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".members is empty"));
    }
    if (group.local_rank < 0 || group.local_rank >= static_cast<int>(group.members.size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".local_rank must be in [0, ", group.members.size(), "), got ", group.local_rank));
    }
    const int32_t at_local_rank = group.members[static_cast<size_t>(group.local_rank)];
    if (at_local_rank != spec.rank) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".members[", group.local_rank, "] is ",
                                                     at_local_rank, ", not this rank ", spec.rank));
    }
    std::set<int32_t> seen;
    for (int32_t member : group.members) {
      if (member < 0 || member >= spec.world_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, ".members holds ", member, ", outside the world [0, ", spec.world_size, ")"));
      }
      if (!seen.insert(member).second) {
        return absl::InvalidArgumentError(absl::StrCat(field, ".members holds ", member, " twice"));
      }
    }
  }
  return absl::OkStatus();
}

std::vector<size_t> KindOrder(const std::vector<GroupAssignment>& groups) {
  std::vector<size_t> order(groups.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&groups](size_t a, size_t b) {
    return groups[a].kind_index < groups[b].kind_index;
  });
  return order;
}

std::string GroupName(const GroupAssignment& group) {
  return absl::StrCat(group.kind, "/", group.group_index);
}

}  // namespace splitd::worker
