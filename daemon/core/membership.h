#ifndef SPLITD_DAEMON_CORE_MEMBERSHIP_H_
#define SPLITD_DAEMON_CORE_MEMBERSHIP_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/core/epoch_readiness.h"
#include "daemon/core/epoch_timeline.h"
#include "daemon/core/leases.h"
#include "daemon/core/member_registry.h"
#include "daemon/core/rank_report.h"
#include "daemon/core/session_tokens.h"
#include "daemon/core/stall_finder.h"
#include "plan/split_plan.h"
#include "splitd/v1/agent_service.pb.h"
#include "splitd/v1/status.pb.h"
#include "splitd/v1/topology.pb.h"

namespace splitd::core {

// Membership and readiness of one cluster's current epoch (docs/architecture.md, "Lifecycle of
// an epoch"): who registered, which member holds which rank, what every rank reported, and
// from that the phase of every rank, group and of the cluster. It composes one part per job:
// MemberRegistry (identities and ranks), Leases (liveness over time), SessionTokens
// (credentials), EpochReadiness (both layers of progress and the epoch's phase), EpochTimeline
// (the epoch's cause and timings), StallFinder (deadlines) and StatusRenderer (ClusterStatus);
// its own part is the order of the checks and steps of each call. The epoch's READY and FAILED
// are final until the next epoch. Pure: no I/O, no clock reads, no randomness (time and fresh
// tokens are passed in). Thread-compatible: the caller serializes access. Pointers to members
// it returns stay valid as long as the Membership, across moves too.
class Membership {
 public:
  using LivenessCounts = core::LivenessCounts;
  using Stall = core::Stall;

  struct Registration {
    const Member* member = nullptr;
    bool rejoined = false;  // the same incarnation registered before
    bool returned = false;  // ... and had been lost
    bool assigned = false;  // this registration completed the world: ranks were assigned
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
  // The store keeps only the digest of a member's session token: the member's calls are checked
  // against it, and when it registers again it gets a fresh token (its old one stays valid
  // until then).
  absl::StatusOr<Registration> Replay(const v1::MemberIdentity& identity,
                                      const v1::Capabilities& capabilities, absl::Time registered,
                                      absl::Time now, const std::string& session_token_sha256);

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

  // Marks members lost whose last sign of life is older than `lease`, or whose plan streams
  // closed more than `stream_grace` ago (Leases::Expire); returns them. A lease runs out only
  // once another member was heard after its end (Hearing): a daemon that hears no member
  // holds them all (held_members) and, when it hears one again, starts every lease anew.
  // `last_heard`: the daemon's newest sign of life of any member of any cluster (Heard).
  std::vector<const Member*> ExpireLeases(absl::Time now, absl::Duration lease,
                                          absl::Duration stream_grace,
                                          absl::Time last_heard = absl::InfiniteFuture());
  // The daemon heard a member (of any cluster) at `now` after hearing none for `silence`: a
  // silence longer than this cluster's lease starts every lease anew at `now`.
  void Heard(absl::Time now, absl::Duration silence);
  // False while ExpireLeases (with the same lease and grace) can find nothing: before the
  // earliest loss its last scan foresaw, with no member admitted, back alive or with a stream
  // closed, no exclusion and no new epoch since. Then neither liveness nor HasMissingRank has
  // changed, and a periodic check may skip both (an O(members) scan at every tick otherwise).
  bool LeaseCheckDue(absl::Time now, absl::Duration lease, absl::Duration stream_grace) const;

  // A plan stream of the member `member_id` opened, or closed at `now` (Leases). Unknown ids
  // are ignored.
  void PlanStreamOpened(const std::string& member_id);
  void PlanStreamClosed(const std::string& member_id, absl::Time now);

  // Alive members the last lease scan held past their lease's end because no member was heard
  // since.
  int64_t held_members() const { return held_; }
  // Leases::LastAliveInstant of `member` at `now`, with the daemon's newest sign of life of any
  // member.
  absl::Time AliveUntil(const Member& member, absl::Duration lease, absl::Duration stream_grace,
                        absl::Time now, absl::Time last_heard) const;

  // True when a rank of the assigned epoch is held by a lost or excluded member.
  bool HasMissingRank() const;

  // Excludes members for good (unknown ids are ignored); returns those newly excluded.
  std::vector<const Member*> Exclude(const std::vector<std::string>& member_ids);

  // The cluster is DEGRADED with `reason` (lost ranks nobody can take) until the next epoch.
  void SetDegraded(const std::string& reason) { readiness_.SetDegraded(reason); }
  const std::string& degraded_reason() const { return readiness_.degraded_reason(); }

  // Why the current epoch was started, and how long its cause took to detect and to plan.
  void SetEpochCause(const std::string& reason, double detect_ms, double plan_ms);
  const std::string& epoch_reason() const { return timeline_.reason(); }

  // Per-phase timings of the current epoch (EpochTimings in status.proto).
  v1::EpochTimings Timings() const;

  // The member the credentials name. NOT_FOUND for an unknown member id, UNAUTHENTICATED for a
  // wrong token, INVALID_ARGUMENT for missing fields.
  absl::StatusOr<const Member*> Authenticate(const v1::MemberCredentials& credentials) const;

  // The member whose session token is `token`, if any (looked up by the token's digest).
  const Member* SessionHolder(const std::string& token) const;

  // Members by liveness; spares count as alive.
  LivenessCounts CountByLiveness() const { return members_.CountByLiveness(); }

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
  // `source` kMember: the sender is checked by the report's member id and session token.
  // kDaemon: the report comes from the daemon itself (read back from the store, which keeps no
  // session tokens, or a stall's report it wrote): its sender is taken by member id.
  enum class ReportSource { kMember, kDaemon };
  absl::StatusOr<v1::Phase> Report(const RankReport& report, absl::Time now,
                                   ReportSource source = ReportSource::kMember);
  // Report's checks alone: OK when Report would accept `report`; changes nothing.
  absl::Status CheckReport(const RankReport& report,
                           ReportSource source = ReportSource::kMember) const;

  // OK when the member holds a rank of `epoch`, the current epoch: it may use that epoch's
  // rendezvous space. ABORTED for an old epoch, PERMISSION_DENIED for a spare.
  absl::Status CheckRendezvous(const v1::MemberCredentials& credentials, int64_t epoch) const;

  const plan::SplitPlan& plan() const { return *plan_; }
  const std::shared_ptr<const plan::SplitPlan>& shared_plan() const { return plan_; }
  bool assigned() const { return readiness_.assigned(); }
  v1::Phase phase() const { return readiness_.Phase(*plan_); }
  const std::string& reason() const { return readiness_.reason(); }
  int64_t member_count() const { return members_.size(); }
  // Members that are alive and hold no rank, in the order they would take ranks.
  std::vector<const Member*> Spares() const;
  const Member* FindById(const std::string& member_id) const;

  // Everything an operator asks about the epoch (StatusRenderer::Render).
  v1::ClusterStatus Status() const;

  // The slowest rank past a deadline at `now`, or nullopt (StallFinder::Find).
  std::optional<Stall> FindStall(absl::Time now, const v1::Deadlines& deadlines) const;

  // Applies a stall's report (Report) without taking it for a sign of the member's life: the
  // daemon wrote it, and a silent member's lease must run out as it would have.
  absl::StatusOr<v1::Phase> ApplyStall(const Stall& stall, absl::Time now);

 private:
  // Authenticate for a member id and session token given apart (a RankReport's sender, say).
  absl::StatusOr<const Member*> AuthenticateSession(const std::string& member_id,
                                                    const std::string& session_token) const;
  // CheckRendezvous for a member already authenticated.
  absl::Status CheckEpochOf(const Member& member, int64_t epoch) const;
  // The member `member_id` names; NOT_FOUND for none.
  absl::StatusOr<const Member*> FindRegistered(const std::string& member_id) const;
  // Register and Replay: admits a new member with the token (empty when replayed) and its
  // digest, or finds the incarnation's member, giving it `session_token` when it has none.
  absl::StatusOr<Registration> Admit(const v1::MemberIdentity& identity,
                                     const v1::Capabilities& capabilities, absl::Time now,
                                     const std::string& session_token,
                                     const std::string& session_token_sha256);
  // Report's checks of who sent `report`: its credentials, that it holds the rank it names
  // in the current, assigned epoch. Returns the member.
  absl::StatusOr<const Member*> CheckSender(const RankReport& report, ReportSource source) const;
  // Ranks by `chosen` (member by rank), or by DefaultAssignment when empty; PLANNED from `now`.
  void AssignRanks(const std::vector<Member*>& chosen, absl::Time now);
  // Assigns ranks when they are not assigned and enough members are alive; true when it did.
  bool AssignWhenComplete(absl::Time now);
  // Authenticate, for a member to change.
  absl::StatusOr<Member*> FindMember(const v1::MemberCredentials& credentials);

  // What LeaseCheckDue compares with: the last scan's foresight and parameters.
  absl::Time next_lease_check_ = absl::InfinitePast();
  // What the daemon heard of the members as a whole at the last scan, and how many alive
  // members that scan held past their lease's end because nobody was heard since.
  Hearing hearing_;
  int64_t held_ = 0;
  absl::Duration checked_lease_;
  absl::Duration checked_grace_;

  std::shared_ptr<const plan::SplitPlan> plan_;
  MemberRegistry members_;
  SessionTokens tokens_;
  EpochReadiness readiness_;
  EpochTimeline timeline_;
};

}  // namespace splitd::core

#endif  // SPLITD_DAEMON_CORE_MEMBERSHIP_H_
