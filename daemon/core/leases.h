#ifndef SPLITD_DAEMON_CORE_LEASES_H_
#define SPLITD_DAEMON_CORE_LEASES_H_

#include <vector>

#include "absl/time/time.h"
#include "daemon/core/member_registry.h"

namespace splitd::core {

// The members' leases: a member is alive while its last sign of life (registration,
// heartbeat, report) is no older than the lease, lost once it is, and alive again when it
// registers or heartbeats again. Excluded members stay excluded. Pure: time is an argument.
// Stateless: the lease of each member is its `last_seen` and `liveness`.
class Leases {
 public:
  // A registration or heartbeat of `member` at `now`: its lease is renewed and a lost member
  // is alive again. Returns true when the member had been lost. Not for excluded members.
  static bool Renew(Member& member, absl::Time now);

  // A report of `member` at `now` is a sign of life: the lease is renewed, its liveness is not
  // changed.
  static void Touch(Member& member, absl::Time now) { member.last_seen = now; }

  // Marks alive members whose last sign of life is older than `lease` as lost; returns them.
  static std::vector<const Member*> Expire(MemberRegistry& registry, absl::Time now,
                                           absl::Duration lease);

  // True when a rank is held by a lost or excluded member.
  static bool AnyRankMissing(const MemberRegistry& registry);
};

}  // namespace splitd::core

#endif  // SPLITD_DAEMON_CORE_LEASES_H_
