#ifndef SPLITD_WORKER_WORLD_SPEC_CHECKS_H_
#define SPLITD_WORKER_WORLD_SPEC_CHECKS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "worker/group_builder.h"

namespace splitd::worker {

// Checks every backend makes of a WorldSpec before it touches a library. INVALID_ARGUMENT
// naming the field otherwise. Pure.

// world_size >= 1, rank within it, timeout in (0, max_timeout].
absl::Status CheckWorldSpec(const WorldSpec& spec, absl::Duration max_timeout);

// At most one group per kind, members inside the world without repeats, local_rank pointing
// at this rank.
absl::Status CheckGroupAssignments(const WorldSpec& spec);

// Indexes of `groups` by kind_index ascending: the order every rank forms and uses them in.
std::vector<size_t> KindOrder(const std::vector<GroupAssignment>& groups);

// "tp/3": a group's kind and index, for messages.
std::string GroupName(const GroupAssignment& group);

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_WORLD_SPEC_CHECKS_H_
