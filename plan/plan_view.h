#ifndef SPLITD_PLAN_PLAN_VIEW_H_
#define SPLITD_PLAN_PLAN_VIEW_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "plan/split_plan.h"
#include "splitd/v1/plan.pb.h"

namespace splitd::plan {

// Which part of a plan an operator asked for (GetPlan).
struct PlanFilter {
  std::string group;            // only this kind; empty = all kinds
  std::optional<int64_t> rank;  // only the groups holding this rank
};

// Renders a SplitPlan as the v1.Plan message operators see. Pure.
class PlanView {
 public:
  // Every selected kind with split_ranks expanded. NOT_FOUND for an unknown `filter.group`
  // ("group \"x\" not found in cluster \"c\""), INVALID_ARGUMENT for a rank outside
  // [0, world_size) ("rank must be in [0, 8), got 9"). With a rank, a kind in which the rank
  // takes no part is listed with no split_ranks.
  static absl::StatusOr<v1::Plan> ToProto(const SplitPlan& plan, const PlanFilter& filter);

  // What agents receive (docs/architecture.md, "Scale"): the normalized topology (the generator)
  // and, per kind, its settings and counts; split_ranks only for explicit lists, so the message
  // does not grow with the world for generated kinds.
  static v1::Plan ToAgentProto(const SplitPlan& plan);

 private:
  // Cluster, epoch, fingerprint, world size, method and topology.
  static v1::Plan Header(const SplitPlan& plan);
};

}  // namespace splitd::plan

#endif  // SPLITD_PLAN_PLAN_VIEW_H_
