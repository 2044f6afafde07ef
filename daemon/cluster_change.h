#ifndef SPLITD_DAEMON_CLUSTER_CHANGE_H_
#define SPLITD_DAEMON_CLUSTER_CHANGE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "daemon/core/member_registry.h"
#include "plan/split_plan.h"
#include "splitd/internal/store_records.pb.h"
#include "splitd/v1/agent_service.pb.h"
#include "splitd/v1/control_service.pb.h"
#include "splitd/v1/status.pb.h"

namespace splitd::daemon {

// Something agents watching a cluster must learn about.
struct ClusterEvent {
  std::string cluster;
  int64_t epoch = 0;     // the cluster's current epoch
  bool deleted = false;  // the cluster is gone
};

// What a change says once it is durable: a line for the daemon's log and an event for its event
// log, either of them possibly absent.
struct Announcement {
  enum class Level { kInfo, kWarn };
  Level level = Level::kInfo;
  std::string line;                // logged as is; empty: not logged
  std::optional<v1::Event> event;  // appended to the EventLog, stamped when it is published
};

// One change of cluster state, apart from the new state itself: the records that make it
// durable, and what is published once they are. The Coordinator computes it under its lock with
// the functions below and Membership's (pure: no I/O, time passed in), commits the records
// (GroupCommit) with no lock held, and only then publishes the announcements in order and the
// notice. A dry run computes it and commits nothing.
struct ClusterChange {
  std::vector<internal::LogRecord> records;
  std::vector<Announcement> announcements;
  std::optional<ClusterEvent> notice;  // for the plan watchers (the Coordinator's listener)

  void Add(Announcement announcement) { announcements.push_back(std::move(announcement)); }
};

// The announcements of the Coordinator's changes. Pure and deterministic.
namespace said {

// An event of `kind`; `member` (optional) names its member and rank, otherwise rank is -1.
v1::Event Event(v1::EventKind kind, const std::string& cluster, int64_t epoch,
                const core::Member* member, v1::Phase phase, const std::string& reason,
                const v1::EpochTimings* timings = nullptr,
                v1::EpochCause cause = v1::EPOCH_CAUSE_UNSPECIFIED);

// ApplyTopology made `plan` (the epoch of `reason`) current, creating its cluster or not.
Announcement TopologyApplied(const plan::SplitPlan& plan, const std::string& reason,
                             v1::Phase phase, bool created);
// A new epoch the policy or Reconfigure started, after `from_epoch`.
Announcement EpochStarted(const plan::SplitPlan& plan, int64_t from_epoch,
                          const std::string& reason, bool shrinks, v1::Phase phase,
                          double detect_ms, double plan_ms, v1::EpochCause cause);
Announcement ClusterDeleted(const std::string& cluster, int64_t epoch);

// What a registration says: the member joined or returned (nothing for a rejoin of a live
// member), and that it completed the world of `epoch` when it did.
struct Admitted {
  const core::Member* member = nullptr;
  bool rejoined = false;
  bool returned = false;
  bool assigned = false;  // this registration completed the world
  int64_t epoch = 0;
  v1::Phase phase = v1::PHASE_UNSPECIFIED;
};
Announcement Registered(const v1::MemberIdentity& identity, const Admitted& admitted);
Announcement HeartbeatsAgain(const std::string& cluster, int64_t epoch, const core::Member& member,
                             v1::Phase phase);
// `by_stream`: its plan stream closed and stayed closed, rather than its lease running out.
Announcement MemberLost(const std::string& cluster, int64_t epoch, const core::Member& member,
                        bool by_stream);
Announcement MemberExcluded(const std::string& cluster, int64_t epoch, const core::Member& member);

// The cluster's phase changed to `phase` (READY's reason is the timings).
Announcement PhaseChanged(const std::string& cluster, int64_t epoch, v1::Phase phase,
                          const v1::EpochTimings& timings, const std::string& reason);
// A rank past its deadline (`stall`), which failed the epoch (PhaseChanged follows).
Announcement Stalled(const std::string& cluster, int64_t epoch, const core::Member& member,
                     v1::Phase phase, const std::string& stall);
Announcement Degraded(const std::string& cluster, int64_t epoch, v1::Phase phase,
                      const std::string& reason);
// Logged only: a change with nothing for the event log.
Announcement Note(std::string line);

}  // namespace said
}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_CLUSTER_CHANGE_H_
