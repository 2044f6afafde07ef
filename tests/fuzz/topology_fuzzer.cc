// Fuzz target: any bytes as a topology document, through the parser, the validator, the planner
// and the plan views. Nothing may crash, whatever the document says.

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/topology_document.h"
#include "plan/plan_view.h"
#include "plan/split_planner.h"
#include "plan/topology_validator.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<splitd::v1::Topology> topology = splitd::TopologyDocument::Parse(text);
  if (!topology.ok()) return 0;
  absl::StatusOr<splitd::v1::Topology> normalized =
      splitd::plan::TopologyValidator::Normalize(*topology);
  if (!normalized.ok()) return 0;
  // Planning is linear in the world; keep each input fast.
  if (normalized->world_size() > (1 << 16)) return 0;
  absl::StatusOr<splitd::plan::SplitPlan> plan = splitd::plan::SplitPlanner::Build(*topology, 1);
  if (!plan.ok()) return 0;
  splitd::plan::PlanView::ToAgentProto(*plan);
  splitd::plan::PlanFilter filter;
  filter.rank = size % static_cast<size_t>(plan->world_size);
  (void)splitd::plan::PlanView::ToProto(*plan, filter);
  (void)splitd::TopologyDocument::ToYaml(*normalized);
  return 0;
}
