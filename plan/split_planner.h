#ifndef SPLITD_PLAN_SPLIT_PLANNER_H_
#define SPLITD_PLAN_SPLIT_PLANNER_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "plan/split_plan.h"
#include "splitd/v1/topology.pb.h"

namespace splitd::plan {

// Turns a topology into a SplitPlan (docs/architecture.md, "Topology and plan";
// docs/plan-format.md). Pure; stateless.
class SplitPlanner {
 public:
  // Normalizes and validates `topology` (TopologyValidator), expands every group kind in
  // canonical order, checks the rules that need expansion, and computes the fingerprint.
  // INVALID_ARGUMENT naming the field on any violation; `epoch` must be >= 1.
  static absl::StatusOr<SplitPlan> Build(const v1::Topology& topology, int64_t epoch);

  // The members of the group of kind `kind_index` that holds `rank`, in local-rank order,
  // computed from the generator alone in O(group size) (what one agent needs, without expanding
  // the whole world). Empty when the rank takes no part in that kind. `normalized` must come
  // from TopologyValidator::Normalize.
  static std::vector<int32_t> MembersOf(const v1::Topology& normalized, int kind_index,
                                        int64_t rank);
};

}  // namespace splitd::plan

#endif  // SPLITD_PLAN_SPLIT_PLANNER_H_
