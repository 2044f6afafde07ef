#ifndef SPLITD_DAEMON_CORE_LEASES_H_
#define SPLITD_DAEMON_CORE_LEASES_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/time/time.h"
#include "daemon/core/member_registry.h"

namespace splitd::core {

// What the daemon has heard of a cluster's members as a whole. The default (heard always)
// judges every lease on its own.
struct Hearing {
  absl::Time last = absl::InfiniteFuture();  // the newest sign of life of any member
  absl::Time since = absl::InfinitePast();   // the first sign of life after the last silence
};

// The members' leases: a member is alive while its last sign of life (registration,
// heartbeat, report) is no older than the lease, lost once it is, and alive again when it
// registers or heartbeats again. A member whose plan streams all closed (its process died, its
// connection was reset) is lost sooner: once the stream grace has passed without a stream
// opened again or a heartbeat. Excluded members stay excluded. Pure: time is an argument.
// Stateless: the lease of each member is its `last_seen`, `liveness` and stream fields.
//
// A lease runs out only on evidence that the daemon still hears the cluster: some member was
// heard after the lease's end (Hearing). A daemon cut off from every member hears nobody and so
// declares nobody lost; once it hears a member again after a silence longer than a lease, every
// lease starts anew from that instant, so that members whose connections come back a little
// later are not lost for the daemon's own outage. A closed stream needs no such evidence: its
// close came from the member's host.
class Leases {
 public:
  // A registration or heartbeat of `member` at `now`: its lease is renewed, a closed stream is
  // forgiven (the process is alive) and a lost member is alive again. Returns true when the
  // member had been lost. Not for excluded members.
  static bool Renew(MemberRegistry& registry, Member& member, absl::Time now);

  // A plan stream of `member` opened, or closed at `now`.
  static void StreamOpened(Member& member);
  static void StreamClosed(Member& member, absl::Time now);

  // Why an alive member is lost at `now`, or nullopt while it is alive.
  enum class Loss { kLeaseExpired, kStreamClosed };
  static std::optional<Loss> LossAt(const Member& member, absl::Time now, absl::Duration lease,
                                    absl::Duration stream_grace, const Hearing& hearing = {});

  // The end of `member`'s lease: its last sign of life, or the end of the last silence when
  // later, plus `lease`.
  static absl::Time LeaseEnd(const Member& member, absl::Duration lease, const Hearing& hearing);

  // A report of `member` at `now` is a sign of life: the lease is renewed, its liveness is not
  // changed.
  static void Touch(Member& member, absl::Time now) { member.last_seen = now; }

  // Marks alive members lost whose last sign of life is older than `lease`, or whose plan
  // streams closed more than `stream_grace` ago (zero: never by streams); returns them. Sets
  // `*next_check` (when given) to the earliest time an alive member could be lost without a new
  // sign of life, a stream closing or a member coming (back) alive; InfiniteFuture for none.
  // `*held` (when given) counts the alive members past their lease's end that are not lost
  // because no member was heard since (their next check is the next sign of life).
  static std::vector<const Member*> Expire(MemberRegistry& registry, absl::Time now,
                                           absl::Duration lease, absl::Duration stream_grace,
                                           absl::Time* next_check = nullptr,
                                           const Hearing& hearing = {}, int64_t* held = nullptr);

  // The last instant at which LossAt of an alive `member` is still nullopt, as things stand:
  // InfiniteFuture for a member past its lease's end (at `now`) whom Hearing holds.
  static absl::Time LastAliveInstant(const Member& member, absl::Duration lease,
                                     absl::Duration stream_grace, const Hearing& hearing = {},
                                     absl::Time now = absl::InfinitePast());

  // True when a rank is held by a lost or excluded member.
  static bool AnyRankMissing(const MemberRegistry& registry);
};

}  // namespace splitd::core

#endif  // SPLITD_DAEMON_CORE_LEASES_H_
