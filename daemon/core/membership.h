#ifndef SPLITD_DAEMON_CORE_MEMBERSHIP_H_
#define SPLITD_DAEMON_CORE_MEMBERSHIP_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/core/agent_progress.h"
#include "plan/split_plan.h"
#include "daemon/core/workload_progress.h"
#include "splitd/v1/agent_service.pb.h"
#include "splitd/v1/status.pb.h"
#include "splitd/v1/topology.pb.h"

namespace splitd::core {

// Bounds on what agents may send, so that no request can grow the daemon without limit.
inline constexpr int64_t kMaxIdentityFieldLength = 253;  // a DNS name
inline constexpr int64_t kMaxBackends = 16;
// Members beyond the world size wait as spares, up to this many.
inline constexpr int64_t kMaxSpares = 1024;

// Whether a member can take part: alive (its lease holds), lost (its lease expired; it may
// come back) or excluded for good (Reconfigure).
enum class Liveness { kAlive, kLost, kExcluded };

// One agent of a cluster as the daemon knows it.
struct Member {
  std::string member_id;        // "m-<registration order>"
  std::string session_token;
  v1::MemberIdentity identity;
  v1::Capabilities capabilities;
  int64_t order = 0;            // registration order, from 0
  int64_t rank = -1;            // in the current epoch; -1 for spares and before assignment
  absl::Time registered;
  absl::Time last_seen;
  Liveness liveness = Liveness::kAlive;
};

// Membership and readiness of one cluster's current epoch (docs/architecture.md, "Lifecycle of an epoch"):
// who registered, which member holds which rank, what every rank reported, and from that the
// phase of every rank, group and of the cluster. Each rank has two layers of progress: its
// agent's own groups (AgentProgress) and its workload's (WorkloadProgress), which decides READY
// too when the topology's `readiness` is "workload". The epoch's READY and FAILED are final
// until the next epoch. Pure: no I/O, no clock reads, no randomness (time and fresh tokens are
// passed in). Thread-compatible: the caller serializes access.
class Membership {
 public:
  struct Registration {
    const Member* member = nullptr;
    bool rejoined = false;   // the same incarnation registered before
    bool returned = false;   // ... and had been lost
    bool assigned = false;   // this registration completed the world: ranks were assigned
  };

  struct HeartbeatResult {
    int64_t epoch = 0;
    const Member* member = nullptr;
    bool returned = false;  // the member had been lost and is alive again
  };

  explicit Membership(std::shared_ptr<const plan::SplitPlan> plan);

  // Registers an agent. The same incarnation again returns the same member (and rank), alive
  // again if it was lost. A new member gets `session_token`. Ranks are assigned once
  // `world_size` members are alive: the first `world_size` of them, ordered by node, then local
  // index, then registration order; later ones are spares. A new incarnation on the (node,
  // local_index) of a lost or excluded member is a new member. INVALID_ARGUMENT naming the
  // field for a malformed identity, ALREADY_EXISTS when another alive incarnation holds the same
  // (node, local_index), FAILED_PRECONDITION for an excluded incarnation, RESOURCE_EXHAUSTED
  // past kMaxSpares spares.
  absl::StatusOr<Registration> Register(const v1::MemberIdentity& identity,
                                        const v1::Capabilities& capabilities, absl::Time now,
                                        const std::string& session_token);

  // Register while replaying the store: a stored member on the (node, local_index) of an alive
  // one means the earlier one was lost before it; both get `now` as their last sign of life.
  absl::StatusOr<Registration> Replay(const v1::MemberIdentity& identity,
                                      const v1::Capabilities& capabilities, absl::Time registered,
                                      absl::Time now, const std::string& session_token);

  // What Register would do, without doing it: the member the incarnation already is, nullptr
  // when a new member would be admitted, or Register's error.
  absl::StatusOr<const Member*> CheckRegister(const v1::MemberIdentity& identity,
                                              const v1::Capabilities& capabilities) const;

  // Moves to a new plan (a new epoch) started at `now`: every report is dropped and ranks are
  // assigned again: by `assignment` (member ids by rank, world_size of them, every one alive or
  // lost) when given, otherwise over the alive members (if there are enough).
  void StartEpoch(std::shared_ptr<const plan::SplitPlan> plan, absl::Time now,
                  const std::vector<std::string>& assignment = {});

  // After a restart of the daemon (its state replayed), every deadline counts from `now`, as
  // every lease does: the daemon's own downtime is no rank's stall. Phase starts that are
  // earlier move to `now`.
  void Resume(absl::Time now);

  // The assignment StartEpoch would make for `plan` without one; empty when too few members
  // are alive.
  std::vector<std::string> DefaultAssignment(const plan::SplitPlan& plan) const;

  // Member ids by rank; empty before ranks are assigned.
  std::vector<std::string> Assignment() const;

  // Marks members whose last sign of life is older than `lease` as lost; returns them.
  std::vector<const Member*> ExpireLeases(absl::Time now, absl::Duration lease);

  // True when a rank of the assigned epoch is held by a lost or excluded member.
  bool HasMissingRank() const;

  // Excludes members for good (unknown ids are ignored); returns those newly excluded.
  std::vector<const Member*> Exclude(const std::vector<std::string>& member_ids);

  // The cluster is DEGRADED with `reason` (lost ranks nobody can take) until the next epoch.
  void SetDegraded(const std::string& reason) { degraded_reason_ = reason; }
  const std::string& degraded_reason() const { return degraded_reason_; }

  // Why the current epoch was started, and how long its cause took to detect and to plan.
  void SetEpochCause(const std::string& reason, double detect_ms, double plan_ms);
  const std::string& epoch_reason() const { return epoch_reason_; }

  // Per-phase timings of the current epoch (EpochTimings in status.proto).
  v1::EpochTimings Timings() const;

  // The member the credentials name. NOT_FOUND for an unknown member id, UNAUTHENTICATED for a
  // wrong token, INVALID_ARGUMENT for missing fields.
  absl::StatusOr<const Member*> Authenticate(const v1::MemberCredentials& credentials) const;

  // The member whose session token is `token`, if any (looked up by the token's digest).
  const Member* SessionHolder(const std::string& token) const;

  // Members by liveness; spares count as alive.
  struct LivenessCounts {
    int64_t alive = 0;
    int64_t lost = 0;
    int64_t excluded = 0;
  };
  LivenessCounts CountByLiveness() const;

  // Renews the member's lease; a lost member is alive again. An excluded member is answered
  // (member->liveness says so) so that it can stop.
  absl::StatusOr<HeartbeatResult> Heartbeat(const v1::MemberCredentials& credentials,
                                            absl::Time now);

  // Records a rank's report and returns the cluster's phase after it. ABORTED for an old
  // epoch, PERMISSION_DENIED for a rank the member does not hold, FAILED_PRECONDITION before
  // ranks are assigned, INVALID_ARGUMENT naming the field for malformed content. A fingerprint
  // that differs from the plan's fails the rank (and so the cluster) with a reason naming it.
  // A rank's phase only moves forward: a report of an earlier phase than the one recorded (or
  // anything but FAILED after FAILED) is accepted and ignored. Without preflight (topology
  // `preflight: false`) an agent's READY needs no group entries: it formed none.
  // A report of the workload layer (REPORT_LAYER_WORKLOAD) is checked the same way for its
  // sender, epoch, rank, phase and fingerprint, then recorded by WorkloadProgress. With
  // readiness "workload" the epoch is READY once every agent and every workload is READY
  // (VALIDATING while agents are READY and workloads are not), and a workload's failure fails
  // the epoch for good, even if that workload restarts; with readiness "agent" the workload
  // layer is recorded and shown and changes no phase of the epoch.
  absl::StatusOr<v1::Phase> Report(const v1::ReportGroupStatusRequest& request, absl::Time now);
  // Report's checks alone: OK when Report would accept `request`; changes nothing.
  absl::Status CheckReport(const v1::ReportGroupStatusRequest& request) const;

  // OK when the member holds a rank of `epoch`, the current epoch: it may use that epoch's
  // rendezvous space. ABORTED for an old epoch, PERMISSION_DENIED for a spare.
  absl::Status CheckRendezvous(const v1::MemberCredentials& credentials, int64_t epoch) const;

  const plan::SplitPlan& plan() const { return *plan_; }
  const std::shared_ptr<const plan::SplitPlan>& shared_plan() const { return plan_; }
  bool assigned() const { return assigned_; }
  v1::Phase phase() const;
  const std::string& reason() const { return reason_; }
  int64_t member_count() const { return static_cast<int64_t>(members_.size()); }
  // Members that are alive and hold no rank, in the order they would take ranks.
  std::vector<const Member*> Spares() const;
  const Member* FindById(const std::string& member_id) const;

  // Everything an operator asks about the epoch: members (ranked first, in rank order, then
  // spares) with the phase of each layer and since when, per-kind READY/FAILED counts and
  // validation figures (the agents'), the readiness and the workload layer's phase.
  // O(world x kinds). Who holds the epoch back is HangAttribution's, from this.
  v1::ClusterStatus Status() const;

  // A rank that stayed in one phase past its deadline, and the FAILED report that records it
  // (layer, rank, plan fingerprint, the rank's own credentials, `reason` as its error), to be
  // made durable and applied through Report like the rank's own failure report.
  struct Stall {
    int64_t rank = -1;
    const Member* member = nullptr;
    v1::ReportLayer layer = v1::REPORT_LAYER_UNSPECIFIED;
    v1::Phase phase = v1::PHASE_UNSPECIFIED;  // the phase it is stuck in
    std::string reason;
    v1::ReportGroupStatusRequest report;
  };

  // The slowest rank past a deadline at `now` (agent layer before workload layer, then the
  // earlier phase, then the lower rank), or nullopt. Agent PLANNED and BOOTSTRAPPING count
  // against bootstrap_ms from when the ranks were assigned, SPLITTING against split_ms and
  // VALIDATING against validate_ms from their own start; with readiness "workload", a workload
  // short of READY counts against workload_ms from the later of its phase's start and its
  // agent's READY. 0 is no deadline. Ranks of excluded members are skipped (the elastic policy
  // replaces them), as is everything before ranks are assigned and after FAILED or DEGRADED.
  std::optional<Stall> FindStall(absl::Time now, const v1::Deadlines& deadlines) const;

  // Applies a stall's report (Report) without taking it for a sign of the member's life: the
  // daemon wrote it, and a silent member's lease must run out as it would have.
  absl::StatusOr<v1::Phase> ApplyStall(const Stall& stall, absl::Time now);

 private:
  // A rank's deadline that has passed: the layer and phase, since when and against what.
  struct Overdue {
    v1::ReportLayer layer = v1::REPORT_LAYER_UNSPECIFIED;
    v1::Phase phase = v1::PHASE_UNSPECIFIED;
    absl::Time from;
    int64_t deadline_ms = 0;
    const char* field = "";  // in `deadlines`
  };

  absl::Status CheckIdentity(const v1::MemberIdentity& identity) const;
  absl::StatusOr<v1::Phase> ReportImpl(const v1::ReportGroupStatusRequest& request,
                                       absl::Time now, bool apply);
  void AssignRanks(const std::vector<Member*>& chosen, absl::Time now);
  int64_t AliveCount() const;
  // Keeps the epoch's first failure as its reason.
  void NoteFailure(const std::optional<std::string>& failure);
  bool WaitsForWorkload() const;
  std::optional<Overdue> RankOverdue(int64_t rank, absl::Time now,
                                     const v1::Deadlines& deadlines) const;
  void AddMemberStatus(const Member& member, v1::ClusterStatus* status) const;
  absl::StatusOr<Member*> FindMember(const v1::MemberCredentials& credentials);

  std::shared_ptr<const plan::SplitPlan> plan_;
  std::vector<std::unique_ptr<Member>> members_;           // by registration order
  std::map<std::string, Member*> by_incarnation_;
  std::map<std::string, Member*> by_id_;
  // By the SHA-256 of the session token: a lookup's timing says nothing about the token.
  std::unordered_map<std::string, Member*> by_session_digest_;
  std::map<std::pair<std::string, int64_t>, Member*> by_slot_;  // (node, local_index)
  std::vector<Member*> by_rank_;                            // world_size entries once assigned
  bool assigned_ = false;
  AgentProgress agents_;                                    // the agent layer, once assigned
  WorkloadProgress workload_;                               // the workload layer, once assigned
  bool workload_failed_ = false;  // a workload failed an epoch whose READY waits for workloads
  absl::Time assigned_at_ = absl::InfinitePast();  // PLANNED's start
  std::string reason_;                                      // first failure of the epoch
  std::string degraded_reason_;
  std::string epoch_reason_;
  absl::Time epoch_started_ = absl::InfinitePast();
  absl::Time ready_at_ = absl::InfinitePast();
  double detect_ms_ = 0;
  double plan_ms_ = 0;
};

}  // namespace splitd::core

#endif  // SPLITD_DAEMON_CORE_MEMBERSHIP_H_
