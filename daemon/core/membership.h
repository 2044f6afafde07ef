#ifndef SPLITD_DAEMON_CORE_MEMBERSHIP_H_
#define SPLITD_DAEMON_CORE_MEMBERSHIP_H_

#include <array>
#include <cstdint>
#include <map>
#include <unordered_map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/core/split_plan.h"
#include "splitd/v1/agent_service.pb.h"
#include "splitd/v1/status.pb.h"

namespace splitd::core {

// Bounds on what agents may send, so that no request can grow the daemon without limit.
inline constexpr int64_t kMaxIdentityFieldLength = 253;  // a DNS name
inline constexpr int64_t kMaxBackends = 16;
inline constexpr int64_t kMaxReportErrorLength = 4096;
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

// Membership and readiness of one cluster's current epoch (DESIGN.md, "Lifecycle of an epoch"):
// who registered, which member holds which rank, what every rank reported, and from that the
// phase of every rank, group and of the cluster. Pure: no I/O, no clock reads, no randomness
// (time and fresh tokens are passed in). Thread-compatible: the caller serializes access.
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

  explicit Membership(std::shared_ptr<const SplitPlan> plan);

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
  void StartEpoch(std::shared_ptr<const SplitPlan> plan, absl::Time now,
                  const std::vector<std::string>& assignment = {});

  // The assignment StartEpoch would make for `plan` without one; empty when too few members
  // are alive.
  std::vector<std::string> DefaultAssignment(const SplitPlan& plan) const;

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
  // anything but FAILED after FAILED) is accepted and ignored.
  absl::StatusOr<v1::Phase> Report(const v1::ReportGroupStatusRequest& request, absl::Time now);
  // Report's checks alone: OK when Report would accept `request`; changes nothing.
  absl::Status CheckReport(const v1::ReportGroupStatusRequest& request) const;

  // OK when the member holds a rank of `epoch`, the current epoch: it may use that epoch's
  // rendezvous space. ABORTED for an old epoch, PERMISSION_DENIED for a spare.
  absl::Status CheckRendezvous(const v1::MemberCredentials& credentials, int64_t epoch) const;

  const SplitPlan& plan() const { return *plan_; }
  const std::shared_ptr<const SplitPlan>& shared_plan() const { return plan_; }
  bool assigned() const { return assigned_; }
  v1::Phase phase() const;
  const std::string& reason() const { return reason_; }
  int64_t member_count() const { return static_cast<int64_t>(members_.size()); }
  // Members that are alive and hold no rank, in the order they would take ranks.
  std::vector<const Member*> Spares() const;
  const Member* FindById(const std::string& member_id) const;

  // Everything an operator asks about the epoch: members (ranked first, in rank order, then
  // spares), per-kind READY/FAILED counts and validation figures. O(world x kinds).
  v1::ClusterStatus Status() const;

 private:
  // What one rank reported about its group of one kind, over every backend part.
  struct KindReport {
    v1::Phase phase = v1::PHASE_UNSPECIFIED;  // UNSPECIFIED: nothing reported
    double allreduce_value = 0;
    double latency_us = 0;
    double bus_bandwidth_gbps = 0;
  };
  struct RankState {
    v1::Phase phase = v1::PHASE_PLANNED;
    std::string reason;
    v1::PhaseTimings timings;
    std::vector<KindReport> kinds;  // by kind index
  };

  absl::Status CheckIdentity(const v1::MemberIdentity& identity) const;
  absl::StatusOr<v1::Phase> ReportImpl(const v1::ReportGroupStatusRequest& request,
                                       absl::Time now, bool apply);
  void AssignRanks(const std::vector<Member*>& chosen);
  int64_t AliveCount() const;
  void SetRankPhase(int64_t rank, v1::Phase phase, const std::string& reason);
  absl::StatusOr<Member*> FindMember(const v1::MemberCredentials& credentials);

  std::shared_ptr<const SplitPlan> plan_;
  std::vector<std::unique_ptr<Member>> members_;           // by registration order
  std::map<std::string, Member*> by_incarnation_;
  std::map<std::string, Member*> by_id_;
  // By the SHA-256 of the session token: a lookup's timing says nothing about the token.
  std::unordered_map<std::string, Member*> by_session_digest_;
  std::map<std::pair<std::string, int64_t>, Member*> by_slot_;  // (node, local_index)
  std::vector<Member*> by_rank_;                            // world_size entries once assigned
  bool assigned_ = false;
  std::vector<RankState> ranks_;                            // world_size entries once assigned
  std::array<int64_t, 9> phase_counts_{};                   // ranks per v1::Phase value
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
