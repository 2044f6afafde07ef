#include "daemon/core/leases.h"

namespace splitd::core {

bool Leases::Renew(Member& member, absl::Time now) {
  member.last_seen = now;
  const bool returned = member.liveness == Liveness::kLost;
  member.liveness = Liveness::kAlive;
  return returned;
}

std::vector<const Member*> Leases::Expire(MemberRegistry& registry, absl::Time now,
                                          absl::Duration lease) {
  std::vector<const Member*> lost;
  for (const auto& member : registry.members()) {
    if (member->liveness == Liveness::kAlive && now - member->last_seen > lease) {
      member->liveness = Liveness::kLost;
      lost.push_back(member.get());
    }
  }
  return lost;
}

bool Leases::AnyRankMissing(const MemberRegistry& registry) {
  for (const Member* member : registry.ranked()) {
    if (member->liveness != Liveness::kAlive) return true;
  }
  return false;
}

}  // namespace splitd::core
