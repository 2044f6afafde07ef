#ifndef SPLITD_DAEMON_CORE_STATUS_RENDERER_H_
#define SPLITD_DAEMON_CORE_STATUS_RENDERER_H_

#include "daemon/core/epoch_readiness.h"
#include "daemon/core/epoch_timeline.h"
#include "daemon/core/member_registry.h"
#include "plan/split_plan.h"
#include "splitd/v1/status.pb.h"

namespace splitd::core {

// Renders what an operator asks about a cluster's current epoch (v1::ClusterStatus) from the
// core's state: members (ranked first, in rank order, then the others in registration order)
// with the phase of each layer and since when, liveness counts, per-kind READY/FAILED counts
// and validation figures (the agents'), the readiness and the workload layer's phase.
// O(world x kinds). Who holds the epoch back is HangAttribution's, from this. Reads only.
// Stateless.
class StatusRenderer {
 public:
  static v1::ClusterStatus Render(const plan::SplitPlan& plan, const MemberRegistry& members,
                                  const EpochReadiness& readiness, const EpochTimeline& timeline);

 private:
  static void AddMember(const plan::SplitPlan& plan, const EpochReadiness& readiness,
                        const Member& member, v1::ClusterStatus* status);
};

}  // namespace splitd::core

#endif  // SPLITD_DAEMON_CORE_STATUS_RENDERER_H_
