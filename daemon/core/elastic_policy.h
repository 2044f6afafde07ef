#ifndef SPLITD_DAEMON_CORE_ELASTIC_POLICY_H_
#define SPLITD_DAEMON_CORE_ELASTIC_POLICY_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "plan/split_plan.h"
#include "splitd/v1/control_service.pb.h"
#include "splitd/v1/topology.pb.h"

namespace splitd::core {

// A live member without a rank, as the policy sees it.
struct SpareMember {
  std::string member_id;
  std::string node;
  int64_t local_index = 0;
  int64_t order = 0;  // registration order
};

// What the policy decides from: the cluster's topologies and its current epoch's membership.
struct PolicyInput {
  v1::Topology declared;                // normalized; its elastic policy applies
  v1::Topology current;                 // normalized topology of the current plan
  std::vector<std::string> assignment;  // member id by rank; empty while ranks are unassigned
  std::vector<std::string> nodes;       // node of each ranked member, by rank
  std::set<std::string> lost;           // members found lost (lease or stream) so far
  std::set<std::string> excluded;       // members excluded for good
  std::vector<SpareMember> spares;      // live members without a rank, in assignment order
  // The last instant at which each alive member (ranked or spare, by id) is still alive without
  // a new sign of life (Leases::LastAliveInstant). A member past it at the decision's `now` is
  // lost for the decision, as if the lease scan had found it; one not listed does not lapse.
  std::map<std::string, absl::Time> alive_until;
  int64_t epoch = 0;      // the current epoch (a new one is epoch + 1)
  bool degraded = false;  // the current epoch is DEGRADED
};

// A new layout, or why there is none.
struct PolicyDecision {
  enum class Action { kNone, kNewEpoch, kDegraded };
  Action action = Action::kNone;
  v1::Topology topology;                // kNewEpoch: the new plan's topology (normalized)
  std::vector<std::string> assignment;  // kNewEpoch: member id by new rank
  // kNewEpoch: set when the new epoch only removes ranks: each new rank's current rank.
  std::vector<int64_t> previous_ranks;
  std::vector<std::string> excluded;  // Reconfigure: members it newly excludes
  std::string reason;                 // one line with counts (kNewEpoch, kDegraded)
  v1::EpochCause cause = v1::EPOCH_CAUSE_UNSPECIFIED;  // kNewEpoch: why
  std::optional<plan::SplitPlan> plan;                 // Decide's kNewEpoch: the plan of epoch + 1
};

// What happened to a cluster's membership, for ElasticPolicy::DecisionDue.
struct Occurrence {
  bool assigned = false;         // the current epoch's ranks are assigned
  bool degraded = false;         // the current epoch is DEGRADED (it has its decision)
  int64_t members_lost = 0;      // members just found lost
  bool rank_missing = false;     // a rank is held by a lost or excluded member
  bool spare_joined = false;     // a new member without a rank registered
  bool member_returned = false;  // a lost member is alive again
};

// The failure-handling and scaling policy (docs/architecture.md, "Elastic reconfiguration"). Pure
// and deterministic; thread-compatible (stateless).
//
// Replicas are the slices of the replica dim: ranks that share its coordinate. When ranks lose
// their members (lost or excluded), spares take those ranks first (same layout, same ranks for
// everyone else). Without enough spares, the replicas that hold them are dropped while the
// replica dim stays >= elastic.min; the other ranks keep their coordinates, renumbered in the
// same order, and the live members of dropped replicas become spares. Below the minimum the
// cluster is DEGRADED until members return. With no rank missing, live spares add whole
// replicas up to elastic.max. A DEGRADED cluster whose every rank has its member again re-forms
// the same layout. Decide plans the new epoch too: a layout that does not plan leaves the
// cluster DEGRADED, saying why.
class ElasticPolicy {
 public:
  // Whether `occurrence` calls for Decide: once ranks are assigned, a member lost, a spare that
  // joined or a member that returned may change the layout, and so may a rank that is missing
  // (one lost before its epoch started) unless the cluster is DEGRADED already.
  static bool DecisionDue(const Occurrence& occurrence);

  // The decision at `now`: members past their `alive_until` count as lost.
  static PolicyDecision Decide(const PolicyInput& input, absl::Time now);

  // The layout of a FAILED epoch again (elastic.retries): kNewEpoch with the current topology
  // and assignment, cause RETRIED, when fewer than elastic.retries retries were done in a row
  // and every rank's member is alive at `now`; kNone otherwise (a missing rank is Decide's).
  // `failure` is the epoch's reason, quoted in the decision's.
  static PolicyDecision Retry(const PolicyInput& input, int64_t retries_done,
                              const std::string& failure, absl::Time now);

  // Reconfigure: applies `change` to the current epoch. INVALID_ARGUMENT naming the field for
  // a malformed change (unknown dim, rank out of range, node without members, nothing to
  // change), FAILED_PRECONDITION when live members cannot meet it (the message says why).
  // `declared` receives the declared topology after the change (a set replica dim becomes its
  // max). kNone when the layout stays as it is for now (a larger replica dim waits for members;
  // `reason` says so); never kDegraded.
  static absl::StatusOr<PolicyDecision> Reconfigure(const PolicyInput& input,
                                                    const v1::Change& change,
                                                    v1::Topology* declared, absl::Time now);

  // What changes from one layout to another: per kind, groups kept (same members in the same
  // order), removed and added; members whose rank changes.
  struct Layout {
    const plan::SplitPlan* plan = nullptr;
    std::vector<std::string> assignment;  // member id by rank
  };
  static v1::PlanDiff Diff(const Layout& from, const Layout& to);

 private:
  // `decision` (kNewEpoch) with the plan of epoch + 1, or kDegraded saying why it does not plan.
  static PolicyDecision Planned(PolicyDecision decision, const PolicyInput& input);
  // `input` with the members past their alive_until at `now` lost (ranked) or gone (spares).
  static PolicyInput AsOf(const PolicyInput& input, absl::Time now);
};

}  // namespace splitd::core

#endif  // SPLITD_DAEMON_CORE_ELASTIC_POLICY_H_
