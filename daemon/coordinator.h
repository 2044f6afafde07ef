#ifndef SPLITD_DAEMON_COORDINATOR_H_
#define SPLITD_DAEMON_COORDINATOR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "daemon/cluster_change.h"
#include "daemon/core/elastic_policy.h"
#include "daemon/core/hang_attribution.h"
#include "daemon/core/membership.h"
#include "daemon/event_log.h"
#include "daemon/group_commit.h"
#include "daemon/store/cluster_record.h"
#include "daemon/store/state_store.h"
#include "plan/plan_view.h"
#include "plan/split_plan.h"
#include "splitd/v1/agent_service.pb.h"
#include "splitd/v1/control_service.pb.h"
#include "splitd/v1/plan.pb.h"
#include "splitd/v1/status.pb.h"
#include "splitd/v1/topology.pb.h"

namespace splitd::daemon {

// The daemon's one stateful object: owns the clusters, their current plans, their membership
// and readiness, and the store. gRPC handlers call it.
//
// Threading: every public method is thread-safe. Each call decides, commits and publishes. Under
// `mu_` it computes its change of cluster state with pure functions of (state, request, now)
// (core::Membership, core::ElasticPolicy, and the announcements of daemon/cluster_change.h),
// applies it, and queues the change's store records (Stage), which fixes their order. It then
// waits for them with no lock held while GroupCommit writes every change queued meanwhile in one
// store commit (with --data_dir, one append and one fdatasync). Only once the change is durable
// is the call answered and the change published (Publish: its log lines, events and notice to
// the listener), all outside `mu_`. Reads wait the same way for whatever change was queued when
// they read, so nothing is answered from state the store does not hold. A write that fails takes
// the state back to the store's (TakeBack) and fails the changes queued on top of it. Changes of
// a cluster's topology or epoch (apply, delete, reconfigure, an epoch the policy starts) are also
// serialized by `write_mu_`, held while they plan and wait for their write. No disk write, sync,
// log line or listener runs under `mu_`.
class Coordinator {
 public:
  using EventListener = std::function<void(const ClusterEvent&)>;

  struct ApplyResult {
    v1::Cluster cluster;
    bool created = false;
    bool changed = false;
  };

  // `store`, `clock` and `events` must outlive the coordinator; without `events` it keeps its
  // own.
  Coordinator(store::StateStore* store, const Clock* clock, EventLog* events = nullptr);

  EventLog* events() const { return events_; }

  // Loads every cluster from the store, recomputes its plan and replays its members and the
  // current epoch's reports. Until it succeeds, every other call returns UNAVAILABLE.
  absl::Status Recover();

  // The rendezvous keys of each cluster's current epoch that Recover found, for the rendezvous
  // spaces to take over (once).
  struct RecoveredSpace {
    std::string cluster;
    int64_t epoch = 0;
    std::map<std::string, std::string> keys;
  };
  std::vector<RecoveredSpace> TakeRecoveredSpaces();

  // Queues a rendezvous key for the group committer and returns what calls back once it is
  // durable (RendezvousSpaces stores the key only then). Takes no lock of the Coordinator.
  using WhenDurable = std::function<void(std::function<void(absl::Status)>)>;
  WhenDurable PersistRendezvousKey(const std::string& cluster, int64_t epoch,
                                   const std::string& key, const std::string& value);
  // The same for a key's removal, so that a restarted daemon does not bring the key back.
  WhenDurable PersistRendezvousKeyDeletion(const std::string& cluster, int64_t epoch,
                                           const std::string& key);

  // The join token an ApplyTopology call gives its cluster.
  struct JoinToken {
    std::string token;      // empty: keep the cluster's current one (or none)
    bool required = false;  // refuse to leave the cluster without one
  };

  // Creates or updates a cluster. The same (normalized) topology again is a no-op (apart from a
  // new join token, stored at the same epoch); a different one starts epoch + 1.
  // INVALID_ARGUMENT (field named) for a bad topology or join token; nothing is stored.
  absl::StatusOr<ApplyResult> ApplyTopology(const v1::Topology& topology, const JoinToken& join);
  absl::StatusOr<ApplyResult> ApplyTopology(const v1::Topology& topology) {
    return ApplyTopology(topology, JoinToken());
  }

  absl::StatusOr<v1::Cluster> GetCluster(const std::string& name) const;
  absl::StatusOr<std::vector<v1::Cluster>> ListClusters() const;
  // Returns the epoch the cluster was at.
  absl::StatusOr<int64_t> DeleteCluster(const std::string& name);
  absl::StatusOr<v1::Plan> GetPlan(const std::string& name, const plan::PlanFilter& filter) const;
  // The current epoch's status, with who holds it back (core::HangAttribution) given the
  // rendezvous keys each member waits for in that epoch's space (by member id).
  absl::StatusOr<v1::ClusterStatus> GetStatus(
      const std::string& name, const core::HangAttribution::WaitingKeys& waiting_keys = {}) const;
  // The cluster's current epoch.
  absl::StatusOr<int64_t> CurrentEpoch(const std::string& name) const;

  // Told whenever a cluster gets a new epoch, its ranks get assigned, or it is deleted. Set
  // once, before serving.
  void SetEventListener(EventListener listener);

  // Reconfigure (ControlService): see control_service.proto.
  absl::StatusOr<v1::ReconfigureResponse> Reconfigure(const v1::ReconfigureRequest& request);

  // Expires leases and applies each cluster's policy, then fails epochs a rank holds past its
  // deadline (topology `deadlines`); the daemon calls it periodically.
  void Tick();

  // How an asynchronous call answers: once, with no lock held, on the thread that settled its
  // change (or at once on the caller's).
  template <typename Response>
  using Done = std::function<void(absl::StatusOr<Response>)>;

  // AgentService. Every call after Register names its member (core::Membership checks it).
  // Register and ReportGroupStatus answer through `done` once their change is durable (the
  // gRPC handler returns meanwhile); the forms without `done` wait for the answer.
  void Register(const v1::RegisterRequest& request, Done<v1::RegisterResponse> done);
  absl::StatusOr<v1::RegisterResponse> Register(const v1::RegisterRequest& request);
  // A plan as WatchPlan sends it. Every watcher of an epoch shares its one encoding: a stream
  // sends `plan_field` and its own rank, which together are the WatchPlanResponse.
  struct PlanForMember {
    // WatchPlanResponse's field `plan` encoded (tag, length, Plan): immutable, never copied.
    std::shared_ptr<const std::string> plan_field;
    int64_t epoch = 0;
    int64_t rank = -1;
  };
  // The plan the member should form next: the current epoch's, once ranks are assigned, when it
  // is newer than `known_epoch`; nullopt while there is none.
  absl::StatusOr<std::optional<PlanForMember>> NextPlan(const v1::MemberCredentials& member,
                                                        int64_t known_epoch) const;
  // A plan stream of `member` (whose session NextPlan accepted) opened, or closed now: once a
  // member's streams all stay closed past the topology's elastic.stream_grace_ms without a
  // heartbeat, Tick takes it for lost without waiting for its lease.
  void PlanStreamOpened(const v1::MemberCredentials& member);
  void PlanStreamClosed(const v1::MemberCredentials& member);
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request);
  // Records a rank's report as core::RankReport (ToRankReport). It is durable before it is
  // applied; the store keeps the request without its session token.
  void ReportGroupStatus(const v1::ReportGroupStatusRequest& request,
                         Done<v1::ReportGroupStatusResponse> done);
  absl::StatusOr<v1::ReportGroupStatusResponse> ReportGroupStatus(
      const v1::ReportGroupStatusRequest& request);
  // OK when the member may use the rendezvous space of (its cluster, `epoch`).
  // The lowercase hex SHA-256 of `cluster`'s join token, "" when it has none (for the
  // Authorizer, which decides whether Register may join). NOT_FOUND for an unknown cluster
  // (agents wait for it), INVALID_ARGUMENT for an empty name.
  absl::StatusOr<std::string> JoinTokenDigest(const std::string& cluster) const;

  // True when `token` is some cluster's join token or some member's session token.
  bool IsAgentToken(const std::string& token) const;

  absl::Status AuthorizeRendezvous(const v1::MemberCredentials& member, int64_t epoch) const;

  // Clusters by phase and members by liveness over every cluster, read at one instant (for
  // metrics). Spares count as alive members.
  struct Counts {
    std::map<v1::Phase, int64_t> clusters_by_phase;
    int64_t alive_members = 0;
    int64_t lost_members = 0;
    int64_t excluded_members = 0;
  };
  Counts CountClustersAndMembers() const;

 private:
  struct ClusterEntry {
    store::ClusterRecord record;
    std::shared_ptr<const plan::SplitPlan> plan;
    // What WatchPlan sends (PlanView::ToAgentProto), encoded once as WatchPlanResponse's `plan`.
    std::shared_ptr<const std::string> agent_plan_field;
  };

  // The state the store holds, rebuilt in memory (Recover, and TakeBack after a failed write).
  struct LoadedState {
    std::map<std::string, std::shared_ptr<const ClusterEntry>> clusters;
    std::map<std::string, std::unique_ptr<core::Membership>> memberships;
    std::vector<RecoveredSpace> spaces;
    int64_t members = 0;
    int64_t reports = 0;
    std::vector<std::string> warnings;  // stored reports that no longer replay
  };
  absl::StatusOr<LoadedState> Load(absl::Time now) const;
  // GroupCommit's failure handler: a change applied here was not stored, so the state goes back
  // to the store's and every change still queued fails.
  void TakeBack(const absl::Status& failure) ABSL_LOCKS_EXCLUDED(mu_);
  // Queues the records of `change` (applied under mu_) for the group committer; `change` keeps
  // what it publishes.
  GroupCommit::TicketPtr Stage(ClusterChange* change) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return commits_.Enqueue(std::move(change->records));
  }
  // Logs and emits a durable change's announcements in order, then tells the listener its notice.
  void Publish(const ClusterChange& change) ABSL_LOCKS_EXCLUDED(mu_);

  // INVALID_ARGUMENT naming `field` for an empty or overlong cluster name.
  static absl::Status CheckName(const std::string& field, const std::string& name);
  static absl::Status NotFound(const std::string& name);
  absl::Status CheckRecovered() const ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::shared_ptr<const ClusterEntry>> Find(const std::string& name) const
      ABSL_LOCKS_EXCLUDED(mu_);
  static v1::Cluster ToProto(const ClusterEntry& entry, v1::Phase phase);
  // True when `token` is a member's session token or `join_digest` a join token's digest.
  bool HoldsAgentToken(const std::string& token, const std::string& join_digest) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The member's cluster, once its session token is checked: UNAUTHENTICATED for a missing or
  // unknown token, PERMISSION_DENIED for the token of another member (of any cluster);
  // INVALID_ARGUMENT, NOT_FOUND or UNAVAILABLE otherwise.
  absl::StatusOr<core::Membership*> FindMembership(const v1::MemberCredentials& member) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Notify(const ClusterEvent& event) const;
  // Applies the elastic policy to `name`'s membership: a new epoch, DEGRADED, or nothing.
  // `detect_ms` is how long the loss that prompted it took to detect.
  // A member of any cluster was heard at `now`: tells every membership after a silence, or
  // while one holds members (core::Membership::Heard).
  void HeardFrom(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Reconcile(const std::string& name, double detect_ms) ABSL_LOCKS_EXCLUDED(mu_, write_mu_);
  // Fails each epoch under way whose slowest rank is past its deadline: the FAILED report that
  // says so is made durable first (Recover replays it like a rank's own), then applied, then
  // STALLED and PHASE_CHANGED are emitted.
  void CheckDeadlines() ABSL_LOCKS_EXCLUDED(mu_);
  // Tick, after the deadlines: a FAILED epoch of a cluster with elastic.retries left starts its
  // layout again once elastic.retry_delay_ms has passed (ElasticPolicy::Retry).
  void RetryFailed() ABSL_LOCKS_EXCLUDED(mu_, write_mu_);
  void Retry(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_, write_mu_);
  // ApplyTopology of the topology `current` already has: stores a new join token (digest) at
  // the same epoch, or nothing.
  absl::StatusOr<ApplyResult> ApplySameTopology(std::shared_ptr<const ClusterEntry> current,
                                                const std::string& join_digest)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Makes `entry` (a new epoch of ApplyTopology) current and starts its membership's epoch;
  // returns the change to commit and publish.
  ClusterChange ApplyEpochLocked(const std::shared_ptr<ClusterEntry>& entry, bool created)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A registration applied under mu_ and staged, waiting to be durable.
  struct StagedRegistration {
    v1::RegisterResponse response;
    ClusterChange change;
    // Once durable, the policy may use the member: a new spare or a returning member.
    bool reconcile = false;
    GroupCommit::TicketPtr ticket;  // its change, or the pending one it read (no change)
    bool wrote = false;
  };
  absl::StatusOr<StagedRegistration> StageRegistration(const v1::RegisterRequest& request)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The change of a rank's report received at `now`, applied to `membership` (held under mu_).
  static absl::StatusOr<ClusterChange> ReportChange(const v1::ReportGroupStatusRequest& request,
                                                    absl::Time now, core::Membership* membership);
  // Starts, commits and publishes a new epoch of `current`'s cluster, with `also` (more
  // announcements of the same change) published after it; write_mu_ held.
  absl::Status StartEpoch(const std::shared_ptr<const ClusterEntry>& current,
                          store::ClusterRecord record, plan::SplitPlan plan, double detect_ms,
                          absl::Time decided, v1::EpochCause cause,
                          std::vector<Announcement> also = {})
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Queues a rendezvous key's record (not critical: the spaces store the key only once it is
  // durable) and returns what calls back then.
  WhenDurable QueueKeyRecord(internal::LogRecord record);
  // Stores `record` (the current epoch's with a new declared topology or exclusions) in place of
  // `entry`'s and logs `reason`: ABORTED when the cluster changed meanwhile.
  absl::Status StoreDeclared(const std::shared_ptr<const ClusterEntry>& entry,
                             store::ClusterRecord record, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  static std::shared_ptr<ClusterEntry> MakeEntry(store::ClusterRecord record, plan::SplitPlan plan);
  // `entry` with another record of the same plan (ranks assigned, a new join token or declared
  // topology): shares the plan and the agents' plan.
  static std::shared_ptr<ClusterEntry> WithRecord(const ClusterEntry& entry,
                                                  store::ClusterRecord record);
  // What the policy decides from; each alive member's last alive instant by the declared lease
  // and stream grace.
  core::PolicyInput PolicyInputOf(const ClusterEntry& entry,
                                  const core::Membership& membership) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  store::StateStore* const store_;
  const Clock* const clock_;
  std::unique_ptr<EventLog> owned_events_;
  EventLog* const events_;

  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  bool recovered_ ABSL_GUARDED_BY(mu_) = false;
  // The newest sign of life (registration, heartbeat, report) of any member of any cluster, and
  // whether the last lease scan held a member because none was heard since its lease ran out.
  absl::Time last_heard_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool holding_ ABSL_GUARDED_BY(mu_) = false;
  // Per cluster with elastic.retries: the FAILED epoch seen last, since when, and the retries
  // done in a row (none again once an epoch is READY).
  struct Retrying {
    int64_t epoch = 0;
    absl::Time failed_at;
    int64_t done = 0;
  };
  std::map<std::string, Retrying> retrying_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<const ClusterEntry>> clusters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<core::Membership>> memberships_ ABSL_GUARDED_BY(mu_);
  std::vector<RecoveredSpace> recovered_spaces_ ABSL_GUARDED_BY(mu_);
  EventListener listener_;
  // Declared last: its failure handler uses the state above. Reads wait on it too.
  mutable GroupCommit commits_;
};

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_COORDINATOR_H_
