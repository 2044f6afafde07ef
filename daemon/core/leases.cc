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

absl::Time Leases::LeaseEnd(const Member& member, absl::Duration lease, const Hearing& hearing) {
  return std::max(member.last_seen, hearing.since) + lease;
}

std::optional<Leases::Loss> Leases::LossAt(const Member& member, absl::Time now,
                                           absl::Duration lease, absl::Duration stream_grace,
                                           const Hearing& hearing) {
  if (member.liveness != Liveness::kAlive) return std::nullopt;
  const absl::Time end = LeaseEnd(member, lease, hearing);
  if (now > end && hearing.last > end) return Loss::kLeaseExpired;
  if (stream_grace > absl::ZeroDuration() && member.plan_streams == 0 &&
      member.stream_closed.has_value() && now - *member.stream_closed > stream_grace) {
    return Loss::kStreamClosed;
  }
  return std::nullopt;
}

absl::Time Leases::LastAliveInstant(const Member& member, absl::Duration lease,
                                    absl::Duration stream_grace, const Hearing& hearing,
                                    absl::Time now) {
  absl::Time last = LeaseEnd(member, lease, hearing);
  if (last < now && hearing.last <= last) last = absl::InfiniteFuture();  // held
  if (stream_grace > absl::ZeroDuration() && member.plan_streams == 0 &&
      member.stream_closed.has_value()) {
    last = std::min(last, *member.stream_closed + stream_grace);
  }
  return last;
}

std::vector<const Member*> Leases::Expire(MemberRegistry& registry, absl::Time now,
                                          absl::Duration lease, absl::Duration stream_grace,
                                          absl::Time* next_check, const Hearing& hearing,
                                          int64_t* held) {
  std::vector<const Member*> lost;
  absl::Time next = absl::InfiniteFuture();
  int64_t holding = 0;
  for (const auto& member : registry.members()) {
    if (LossAt(*member, now, lease, stream_grace, hearing).has_value()) {
      registry.SetLiveness(*member, Liveness::kLost);
      lost.push_back(member.get());
    } else if (member->liveness == Liveness::kAlive) {
      const absl::Time alive = LastAliveInstant(*member, lease, stream_grace, hearing, now);
      if (alive == absl::InfiniteFuture() && LeaseEnd(*member, lease, hearing) < now) ++holding;
      next = std::min(next, alive);
    }
  }
  if (next_check != nullptr) *next_check = next;
  if (held != nullptr) *held = holding;
  return lost;
}

bool Leases::AnyRankMissing(const MemberRegistry& registry) {
  for (const Member* member : registry.ranked()) {
    if (member->liveness != Liveness::kAlive) return true;
  }
  return false;
}

}  // namespace splitd::core
