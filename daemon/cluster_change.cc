#include "daemon/cluster_change.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace splitd::daemon::said {

v1::Event Event(v1::EventKind kind, const std::string& cluster, int64_t epoch,
                const core::Member* member, v1::Phase phase, const std::string& reason,
                const v1::EpochTimings* timings, v1::EpochCause cause) {
  v1::Event event;
  event.set_cluster(cluster);
  event.set_epoch(epoch);
  event.set_kind(kind);
  event.set_rank(-1);
  if (member != nullptr) {
    event.set_member_id(member->member_id);
    event.set_rank(member->rank);
  }
  event.set_phase(phase);
  event.set_reason(reason);
  if (timings != nullptr) *event.mutable_timings() = *timings;
  event.set_cause(cause);
  return event;
}

Announcement TopologyApplied(const plan::SplitPlan& plan, const std::string& reason,
                             v1::Phase phase, bool created) {
  Announcement said;
  said.line =
      absl::StrFormat("cluster %s %s at epoch %d (world %d, %d group kinds, fingerprint %s)",
                      plan.cluster, created ? "created" : "updated", plan.epoch, plan.world_size,
                      plan.kinds.size(), plan.fingerprint.substr(0, 12));
  said.event = Event(
      v1::EVENT_KIND_EPOCH_STARTED, plan.cluster, plan.epoch, nullptr, phase,
      absl::StrCat(reason, ": world ", plan.world_size, ", ", plan.kinds.size(), " group kinds"),
      /*timings=*/nullptr, created ? v1::EPOCH_CAUSE_CREATED : v1::EPOCH_CAUSE_TOPOLOGY_CHANGED);
  return said;
}

Announcement EpochStarted(const plan::SplitPlan& plan, int64_t from_epoch,
                          const std::string& reason, bool shrinks, v1::Phase phase,
                          double detect_ms, double plan_ms, v1::EpochCause cause) {
  Announcement said;
  said.line = absl::StrFormat(
      "cluster %s epoch %d -> %d: %s (world %d, fingerprint %s, planned in %.1f ms%s)",
      plan.cluster, from_epoch, plan.epoch, reason, plan.world_size, plan.fingerprint.substr(0, 12),
      plan_ms, shrinks ? ", ranks only removed" : "");
  v1::EpochTimings timings;
  timings.set_detect_ms(detect_ms);
  timings.set_plan_ms(plan_ms);
  said.event = Event(v1::EVENT_KIND_EPOCH_STARTED, plan.cluster, plan.epoch, nullptr, phase, reason,
                     &timings, cause);
  return said;
}

Announcement ClusterDeleted(const std::string& cluster, int64_t epoch) {
  Announcement said;
  said.line = absl::StrFormat("cluster %s deleted at epoch %d", cluster, epoch);
  said.event = Event(v1::EVENT_KIND_CLUSTER_DELETED, cluster, epoch, nullptr, v1::PHASE_UNSPECIFIED,
                     "cluster deleted");
  return said;
}

Announcement Registered(const v1::MemberIdentity& identity, const Admitted& admitted) {
  const core::Member& member = *admitted.member;
  Announcement said;
  said.line = absl::StrFormat(
      "cluster %s: %s %s (pod %s, node %s, local index %d)%s", identity.cluster(),
      admitted.returned   ? "member returned:"
      : admitted.rejoined ? "member rejoined:"
                          : "member registered:",
      member.member_id, identity.pod(), identity.node(), identity.local_index(),
      admitted.assigned
          ? absl::StrCat("; world complete, ranks assigned for epoch ", admitted.epoch)
          : std::string());
  v1::EventKind kind = v1::EVENT_KIND_UNSPECIFIED;
  if (!admitted.rejoined) kind = v1::EVENT_KIND_MEMBER_JOINED;
  if (admitted.returned) kind = v1::EVENT_KIND_MEMBER_RETURNED;
  if (kind != v1::EVENT_KIND_UNSPECIFIED) {
    said.event =
        Event(kind, identity.cluster(), admitted.epoch, &member, admitted.phase,
              absl::StrCat(member.member_id, " (pod ", identity.pod(), ", node ", identity.node(),
                           ")", kind == v1::EVENT_KIND_MEMBER_RETURNED ? " returned" : " joined"));
  }
  return said;
}

Announcement HeartbeatsAgain(const std::string& cluster, int64_t epoch, const core::Member& member,
                             v1::Phase phase) {
  Announcement said;
  said.line = absl::StrFormat("cluster %s: member %s is alive again", cluster, member.member_id);
  said.event = Event(v1::EVENT_KIND_MEMBER_RETURNED, cluster, epoch, &member, phase,
                     absl::StrCat(member.member_id, " heartbeats again"));
  return said;
}

Announcement MemberLost(const std::string& cluster, int64_t epoch, const core::Member& member,
                        bool by_stream) {
  Announcement said;
  said.level = Announcement::Level::kWarn;
  said.line = absl::StrFormat(
      "cluster %s: member %s (rank %d, pod %s) lost: %s", cluster, member.member_id, member.rank,
      member.identity.pod(),
      by_stream ? "its plan stream closed and did not come back" : "no heartbeat for its lease");
  said.event =
      Event(v1::EVENT_KIND_MEMBER_LOST, cluster, epoch, &member, v1::PHASE_UNSPECIFIED,
            absl::StrCat(member.member_id, " (rank ", member.rank, ", pod ", member.identity.pod(),
                         ") lost: ", by_stream ? "plan stream closed" : "lease expired"));
  return said;
}

Announcement MemberExcluded(const std::string& cluster, int64_t epoch, const core::Member& member) {
  Announcement said;
  said.event = Event(v1::EVENT_KIND_MEMBER_EXCLUDED, cluster, epoch, &member, v1::PHASE_UNSPECIFIED,
                     absl::StrCat(member.member_id, " (rank ", member.rank, ", node ",
                                  member.identity.node(), ") excluded"));
  return said;
}

Announcement PhaseChanged(const std::string& cluster, int64_t epoch, v1::Phase phase,
                          const v1::EpochTimings& timings, const std::string& reason) {
  std::string text = reason;
  if (phase == v1::PHASE_READY) {
    text = absl::StrFormat(
        "READY: detect %.0f ms, plan %.0f ms, deliver %.0f ms, bootstrap %.0f ms, split %.0f ms, "
        "validate %.0f ms; %.0f ms from plan to READY",
        timings.detect_ms(), timings.plan_ms(), timings.deliver_ms(), timings.bootstrap_ms(),
        timings.split_ms(), timings.validate_ms(), timings.ready_ms());
  }
  Announcement said;
  said.line = absl::StrCat("cluster ", cluster, " epoch ", epoch, ": ", v1::Phase_Name(phase),
                           text.empty() ? std::string() : absl::StrCat(": ", text));
  said.event = Event(v1::EVENT_KIND_PHASE_CHANGED, cluster, epoch, nullptr, phase, text, &timings);
  return said;
}

Announcement Stalled(const std::string& cluster, int64_t epoch, const core::Member& member,
                     v1::Phase phase, const std::string& stall) {
  Announcement said;
  said.level = Announcement::Level::kWarn;
  said.line = absl::StrCat("cluster ", cluster, " epoch ", epoch, ": ", stall);
  said.event = Event(v1::EVENT_KIND_STALLED, cluster, epoch, &member, phase, stall);
  return said;
}

Announcement Degraded(const std::string& cluster, int64_t epoch, v1::Phase phase,
                      const std::string& reason) {
  Announcement said;
  said.level = Announcement::Level::kWarn;
  said.line = absl::StrCat("cluster ", cluster, " epoch ", epoch, ": DEGRADED: ", reason);
  said.event = Event(v1::EVENT_KIND_DEGRADED, cluster, epoch, nullptr, phase, reason);
  return said;
}

Announcement Note(std::string line) {
  Announcement said;
  said.line = std::move(line);
  return said;
}

}  // namespace splitd::daemon::said
