#include "daemon/core/leases.h"

#include <algorithm>

namespace splitd::core {

bool Leases::Renew(MemberRegistry& registry, Member& member, absl::Time now) {
  member.last_seen = now;
  member.stream_closed.reset();
  const bool returned = member.liveness == Liveness::kLost;
  registry.SetLiveness(member, Liveness::kAlive);
  return returned;
}

void Leases::StreamOpened(Member& member) {
  ++member.plan_streams;
  member.stream_closed.reset();
}

void Leases::StreamClosed(Member& member, absl::Time now) {
  if (member.plan_streams > 0) --member.plan_streams;
  if (member.plan_streams == 0) member.stream_closed = now;
}

std::optional<Leases::Loss> Leases::LossAt(const Member& member, absl::Time now,
                                           absl::Duration lease, absl::Duration stream_grace) {
  if (member.liveness != Liveness::kAlive) return std::nullopt;
  if (now - member.last_seen > lease) return Loss::kLeaseExpired;
  if (stream_grace > absl::ZeroDuration() && member.plan_streams == 0 &&
      member.stream_closed.has_value() && now - *member.stream_closed > stream_grace) {
    return Loss::kStreamClosed;
  }
  return std::nullopt;
}

absl::Time Leases::LastAliveInstant(const Member& member, absl::Duration lease,
                                    absl::Duration stream_grace) {
  absl::Time last = member.last_seen + lease;
  if (stream_grace > absl::ZeroDuration() && member.plan_streams == 0 &&
      member.stream_closed.has_value()) {
    last = std::min(last, *member.stream_closed + stream_grace);
  }
  return last;
}

std::vector<const Member*> Leases::Expire(MemberRegistry& registry, absl::Time now,
                                          absl::Duration lease, absl::Duration stream_grace,
                                          absl::Time* next_check) {
  std::vector<const Member*> lost;
  absl::Time next = absl::InfiniteFuture();
  for (const auto& member : registry.members()) {
    if (LossAt(*member, now, lease, stream_grace).has_value()) {
      registry.SetLiveness(*member, Liveness::kLost);
      lost.push_back(member.get());
    } else if (member->liveness == Liveness::kAlive) {
      next = std::min(next, LastAliveInstant(*member, lease, stream_grace));
    }
  }
  if (next_check != nullptr) *next_check = next;
  return lost;
}

bool Leases::AnyRankMissing(const MemberRegistry& registry) {
  for (const Member* member : registry.ranked()) {
    if (member->liveness != Liveness::kAlive) return true;
  }
  return false;
}

}  // namespace splitd::core
