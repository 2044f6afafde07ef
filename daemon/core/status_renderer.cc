#include "daemon/core/status_renderer.h"

#include <string>

#include "daemon/core/status_fields.h"
#include "plan/topology_validator.h"

namespace splitd::core {

v1::ClusterStatus StatusRenderer::Render(const plan::SplitPlan& plan, const MemberRegistry& members,
                                         const EpochReadiness& readiness,
                                         const EpochTimeline& timeline) {
  v1::ClusterStatus status;
  status.set_cluster(plan.cluster);
  status.set_epoch(plan.epoch);
  status.set_state(readiness.Phase(plan));
  status.set_fingerprint(plan.fingerprint);
  status.set_reason(readiness.degraded_reason().empty() ? readiness.reason()
                                                        : readiness.degraded_reason());
  status.set_epoch_reason(timeline.reason());
  *status.mutable_timings() = timeline.Timings(readiness);
  status.set_world_size(plan.world_size);
  status.set_registered_members(members.size());
  status.set_readiness(std::string(plan::TopologyValidator::Readiness(plan.topology)));
  status.set_workload_state(readiness.assigned() ? readiness.workload().LayerPhase()
                                                 : v1::PHASE_UNSPECIFIED);
  if (readiness.assigned()) {
    for (const Member* member : members.ranked()) AddMember(plan, readiness, *member, &status);
    for (const auto& member : members.members()) {
      if (member->rank < 0) AddMember(plan, readiness, *member, &status);
    }
  } else {
    for (const auto& member : members.members()) AddMember(plan, readiness, *member, &status);
  }
  for (size_t k = 0; k < plan.kinds.size(); ++k) {
    readiness.agents().AddKindStatus(plan, k, status.add_groups());
  }
  return status;
}

void StatusRenderer::AddMember(const plan::SplitPlan& plan, const EpochReadiness& readiness,
                               const Member& member, v1::ClusterStatus* status) {
  v1::MemberStatus* out = status->add_members();
  out->set_member_id(member.member_id);
  out->set_rank(member.rank);
  out->set_pod(member.identity.pod());
  out->set_node(member.identity.node());
  out->set_host(member.identity.host());
  out->set_local_index(member.identity.local_index());
  if (member.liveness == Liveness::kLost) {
    out->set_state(v1::MEMBER_STATE_LOST);
    status->set_lost_members(status->lost_members() + 1);
  } else if (member.liveness == Liveness::kExcluded) {
    out->set_state(v1::MEMBER_STATE_GONE);
    status->set_excluded_members(status->excluded_members() + 1);
  } else {
    out->set_state(member.rank >= 0 || !readiness.assigned() ? v1::MEMBER_STATE_ACTIVE
                                                             : v1::MEMBER_STATE_SPARE);
  }
  *out->mutable_last_seen() = ToTimestamp(member.last_seen);
  for (const std::string& backend : member.capabilities.backends()) out->add_backends(backend);
  if (member.rank >= 0) {
    readiness.agents().Fill(member.rank, out);
    readiness.workload().Fill(plan, member.rank, out);
  } else {
    out->set_phase(v1::PHASE_PENDING);
  }
}

}  // namespace splitd::core
