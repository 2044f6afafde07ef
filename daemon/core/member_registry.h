#ifndef SPLITD_DAEMON_CORE_MEMBER_REGISTRY_H_
#define SPLITD_DAEMON_CORE_MEMBER_REGISTRY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "plan/split_plan.h"
#include "splitd/v1/agent_service.pb.h"

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
  std::string member_id;  // "m-<registration order>"
  // The session token it holds: in memory only, and empty for a member replayed from the store
  // until it registers again (Membership::Register gives it a fresh one).
  std::string session_token;
  std::string session_token_sha256;  // lowercase hex; what the store keeps and calls are checked by
  v1::MemberIdentity identity;
  v1::Capabilities capabilities;
  int64_t order = 0;  // registration order, from 0
  int64_t rank = -1;  // in the current epoch; -1 for spares and before assignment
  absl::Time registered;
  absl::Time last_seen;
  Liveness liveness = Liveness::kAlive;  // changed through MemberRegistry::SetLiveness
  // Plan streams of the member's session open now, and when the last of them closed (unset
  // while one is open, and after a heartbeat or registration shows the process alive).
  int64_t plan_streams = 0;
  std::optional<absl::Time> stream_closed;
};

// Members by liveness; spares count as alive.
struct LivenessCounts {
  int64_t alive = 0;
  int64_t lost = 0;
  int64_t excluded = 0;
};

// Who the members of one cluster are and which rank each holds: their identities (one
// incarnation per (node, local_index) slot at a time), the admission checks, and the order in
// which members take ranks (node, then local index, then registration order). Members live as
// long as the registry and never move, so a `Member*` it hands out stays valid, across moves
// of the registry too. Pure: no I/O, no clock reads. Thread-compatible.
class MemberRegistry {
 public:
  // Whether `identity` may register in `plan`'s cluster: the member the incarnation already
  // is, or nullptr when a new member would be admitted. INVALID_ARGUMENT naming the field for
  // a malformed identity or capabilities, FAILED_PRECONDITION for an incarnation seen on
  // another slot or excluded, ALREADY_EXISTS when another alive incarnation holds the slot,
  // RESOURCE_EXHAUSTED past kMaxSpares spares.
  absl::StatusOr<const Member*> CheckAdmission(const plan::SplitPlan& plan,
                                               const v1::MemberIdentity& identity,
                                               const v1::Capabilities& capabilities) const;

  // Adds a member (admitted by CheckAdmission), alive, registered and last seen at `now`, with
  // its session token's digest (the token itself is set by the caller when it has it).
  Member* Add(const v1::MemberIdentity& identity, const v1::Capabilities& capabilities,
              absl::Time now, const std::string& session_token_sha256);

  Member* FindByIncarnation(const std::string& incarnation);
  Member* FindById(const std::string& member_id);
  const Member* FindById(const std::string& member_id) const;
  // The member registered last on (node, local_index), if any.
  Member* FindBySlot(const std::string& node, int64_t local_index);

  // Members in registration order.
  const std::vector<std::unique_ptr<Member>>& members() const { return members_; }
  int64_t size() const { return static_cast<int64_t>(members_.size()); }
  // Alive members, counted as liveness changes (SetLiveness): O(1).
  int64_t AliveCount() const { return alive_; }
  LivenessCounts CountByLiveness() const;
  // Every change of a member's liveness goes through here, so that AliveCount stays true.
  void SetLiveness(Member& member, Liveness liveness);

  // The first `plan.world_size` alive members in rank order; empty when too few are alive.
  std::vector<std::string> DefaultAssignment(const plan::SplitPlan& plan) const;
  // The members `ids` name, in order; unknown ids are skipped.
  std::vector<Member*> Resolve(const std::vector<std::string>& ids);
  // `chosen[r]` holds rank r; every other member holds none.
  void AssignRanks(const std::vector<Member*>& chosen);
  // No member holds a rank.
  void ClearRanks();
  // Members by rank; empty before ranks are assigned.
  const std::vector<Member*>& ranked() const { return by_rank_; }
  // Member ids by rank.
  std::vector<std::string> Assignment() const;
  // Members that are alive and hold no rank, in the order they would take ranks.
  std::vector<const Member*> Spares() const;

  // Excludes members for good (unknown ids are ignored); returns those newly excluded.
  std::vector<const Member*> Exclude(const std::vector<std::string>& member_ids);

 private:
  std::vector<std::unique_ptr<Member>> members_;  // by registration order
  std::map<std::string, Member*> by_incarnation_;
  std::map<std::string, Member*> by_id_;
  std::map<std::pair<std::string, int64_t>, Member*> by_slot_;  // (node, local_index)
  std::vector<Member*> by_rank_;                                // world_size entries once assigned
  int64_t alive_ = 0;
};

}  // namespace splitd::core

#endif  // SPLITD_DAEMON_CORE_MEMBER_REGISTRY_H_
