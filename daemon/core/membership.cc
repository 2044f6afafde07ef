#include "daemon/core/membership.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "daemon/core/leases.h"
#include "daemon/core/status_renderer.h"

namespace splitd::core {

Membership::Membership(std::shared_ptr<const plan::SplitPlan> plan) : plan_(std::move(plan)) {}

absl::StatusOr<const Member*> Membership::CheckRegister(
    const v1::MemberIdentity& identity, const v1::Capabilities& capabilities) const {
  return members_.CheckAdmission(*plan_, identity, capabilities);
}

absl::StatusOr<Membership::Registration> Membership::Register(const v1::MemberIdentity& identity,
                                                              const v1::Capabilities& capabilities,
                                                              absl::Time now,
                                                              const std::string& session_token) {
  return Admit(identity, capabilities, now, session_token, SessionTokens::Digest(session_token));
}

void Membership::Heard(absl::Time now, absl::Duration silence) {
  // Held members may be lost now that someone is heard after their leases' end.
  if (held_ > 0) next_lease_check_ = absl::InfinitePast();
  const absl::Duration lease = absl::Milliseconds(plan_->topology.elastic().lease_timeout_ms());
  if (lease > absl::ZeroDuration() && silence > lease) hearing_.since = now;
}

absl::Time Membership::AliveUntil(const Member& member, absl::Duration lease,
                                  absl::Duration stream_grace, absl::Time now,
                                  absl::Time last_heard) const {
  return Leases::LastAliveInstant(member, lease, stream_grace, Hearing{last_heard, hearing_.since},
                                  now);
}

absl::StatusOr<Membership::Registration> Membership::Replay(
    const v1::MemberIdentity& identity, const v1::Capabilities& capabilities, absl::Time registered,
    absl::Time now, const std::string& session_token_sha256) {
  if (Member* holder = members_.FindBySlot(identity.node(), identity.local_index());
      holder != nullptr && holder->liveness == Liveness::kAlive &&
      holder->identity.incarnation() != identity.incarnation()) {
    members_.SetLiveness(*holder, Liveness::kLost);
  }
  absl::StatusOr<Registration> registration =
      Admit(identity, capabilities, now, /*session_token=*/"", session_token_sha256);
  if (registration.ok()) {
    members_.FindById(registration->member->member_id)->registered = registered;
  }
  return registration;
}

absl::StatusOr<Membership::Registration> Membership::Admit(
    const v1::MemberIdentity& identity, const v1::Capabilities& capabilities, absl::Time now,
    const std::string& session_token, const std::string& session_token_sha256) {
  next_lease_check_ = absl::InfinitePast();  // a member admitted or alive again
  absl::StatusOr<const Member*> existing = CheckRegister(identity, capabilities);
  if (!existing.ok()) return existing.status();
  Registration registration;
  if (*existing != nullptr) {
    Member* member = members_.FindByIncarnation(identity.incarnation());
    if (member->session_token.empty() && !session_token.empty()) {
      // Replayed from the store, which keeps only a digest: a fresh token for this session.
      member->session_token = session_token;
      member->session_token_sha256 = session_token_sha256;
      tokens_.Add(member);
    }
    registration.member = member;
    registration.rejoined = true;
    registration.returned = Leases::Renew(members_, *member, now);
  } else {
    Member* added = members_.Add(identity, capabilities, now, session_token_sha256);
    added->session_token = session_token;
    tokens_.Add(added);
    registration.member = added;
  }
  registration.assigned = AssignWhenComplete(now);
  return registration;
}

std::vector<std::string> Membership::DefaultAssignment(const plan::SplitPlan& plan) const {
  return members_.DefaultAssignment(plan);
}

std::vector<std::string> Membership::Assignment() const { return members_.Assignment(); }

std::vector<const Member*> Membership::Spares() const { return members_.Spares(); }

const Member* Membership::FindById(const std::string& member_id) const {
  return members_.FindById(member_id);
}

std::vector<const Member*> Membership::ExpireLeases(absl::Time now, absl::Duration lease,
                                                    absl::Duration stream_grace,
                                                    absl::Time last_heard) {
  hearing_.last = last_heard;
  checked_lease_ = lease;
  checked_grace_ = stream_grace;
  return Leases::Expire(members_, now, lease, stream_grace, &next_lease_check_, hearing_, &held_);
}

bool Membership::LeaseCheckDue(absl::Time now, absl::Duration lease,
                               absl::Duration stream_grace) const {
  return now > next_lease_check_ || lease != checked_lease_ || stream_grace != checked_grace_;
}

void Membership::PlanStreamOpened(const std::string& member_id) {
  if (Member* member = members_.FindById(member_id); member != nullptr) {
    Leases::StreamOpened(*member);
  }
}

void Membership::PlanStreamClosed(const std::string& member_id, absl::Time now) {
  if (Member* member = members_.FindById(member_id); member != nullptr) {
    Leases::StreamClosed(*member, now);
    next_lease_check_ = absl::InfinitePast();
  }
}

bool Membership::HasMissingRank() const { return Leases::AnyRankMissing(members_); }

std::vector<const Member*> Membership::Exclude(const std::vector<std::string>& member_ids) {
  next_lease_check_ = absl::InfinitePast();
  return members_.Exclude(member_ids);
}

void Membership::Resume(absl::Time now) { readiness_.Resume(now); }

void Membership::SetEpochCause(const std::string& reason, double detect_ms, double plan_ms) {
  timeline_.SetCause(reason, detect_ms, plan_ms);
}

v1::EpochTimings Membership::Timings() const { return timeline_.Timings(readiness_); }

void Membership::AssignRanks(const std::vector<Member*>& given, absl::Time now) {
  std::vector<Member*> chosen = given;
  if (chosen.empty()) chosen = members_.Resolve(members_.DefaultAssignment(*plan_));
  members_.AssignRanks(chosen);
  // The plan reaches the agents when their ranks are assigned: PLANNED starts then, which is
  // the epoch's start unless the epoch had to wait for members.
  readiness_.Start(*plan_, now);
}

bool Membership::AssignWhenComplete(absl::Time now) {
  if (readiness_.assigned() || members_.AliveCount() < plan_->world_size) return false;
  AssignRanks({}, now);
  return true;
}

void Membership::StartEpoch(std::shared_ptr<const plan::SplitPlan> plan, absl::Time now,
                            const std::vector<std::string>& assignment) {
  next_lease_check_ = absl::InfinitePast();
  plan_ = std::move(plan);
  readiness_.Clear();
  timeline_.Start(now);
  members_.ClearRanks();
  const std::vector<Member*> chosen = members_.Resolve(assignment);
  if (!chosen.empty() && static_cast<int64_t>(chosen.size()) == plan_->world_size) {
    AssignRanks(chosen, now);
  } else {
    AssignWhenComplete(now);
  }
}

absl::StatusOr<Member*> Membership::FindMember(const v1::MemberCredentials& credentials) {
  Member* member = members_.FindById(credentials.member_id());
  if (absl::Status status = SessionTokens::Check(credentials, member, plan_->cluster);
      !status.ok()) {
    return status;
  }
  return member;
}

absl::StatusOr<const Member*> Membership::Authenticate(
    const v1::MemberCredentials& credentials) const {
  return AuthenticateSession(credentials.member_id(), credentials.session_token());
}

absl::StatusOr<const Member*> Membership::AuthenticateSession(
    const std::string& member_id, const std::string& session_token) const {
  const Member* member = members_.FindById(member_id);
  if (absl::Status status = SessionTokens::Check(member_id, session_token, member, plan_->cluster);
      !status.ok()) {
    return status;
  }
  return member;
}

absl::StatusOr<const Member*> Membership::FindRegistered(const std::string& member_id) const {
  const Member* member = members_.FindById(member_id);
  if (member == nullptr) {
    return absl::NotFoundError(absl::StrCat("member \"", absl::CHexEscape(member_id),
                                            "\" is not registered in cluster \"", plan_->cluster,
                                            "\""));
  }
  return member;
}

const Member* Membership::SessionHolder(const std::string& token) const {
  return tokens_.Holder(token);
}

absl::StatusOr<Membership::HeartbeatResult> Membership::Heartbeat(
    const v1::MemberCredentials& credentials, absl::Time now) {
  absl::StatusOr<Member*> found = FindMember(credentials);
  if (!found.ok()) return found.status();
  Member* member = *found;
  HeartbeatResult result{plan_->epoch, member, /*returned=*/false};
  if (member->liveness == Liveness::kExcluded) return result;
  result.returned = Leases::Renew(members_, *member, now);
  if (result.returned) next_lease_check_ = absl::InfinitePast();
  return result;
}

absl::Status Membership::CheckRendezvous(const v1::MemberCredentials& credentials,
                                         int64_t epoch) const {
  absl::StatusOr<const Member*> member = Authenticate(credentials);
  if (!member.ok()) return member.status();
  return CheckEpochOf(**member, epoch);
}

absl::Status Membership::CheckEpochOf(const Member& member, int64_t epoch) const {
  if (epoch < plan_->epoch) {
    return absl::AbortedError(absl::StrCat("epoch ", epoch, " is over; cluster \"", plan_->cluster,
                                           "\" is at epoch ", plan_->epoch));
  }
  if (epoch > plan_->epoch) {
    return absl::FailedPreconditionError(
        absl::StrCat("epoch ", epoch, " has not started; cluster \"", plan_->cluster,
                     "\" is at epoch ", plan_->epoch));
  }
  if (!readiness_.assigned()) {
    return absl::FailedPreconditionError(
        absl::StrCat("ranks of epoch ", epoch, " are not assigned yet"));
  }
  if (member.liveness == Liveness::kExcluded) {
    return absl::PermissionDeniedError(
        absl::StrCat("member ", member.member_id, " was excluded from the cluster"));
  }
  if (member.rank < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("member ", member.member_id, " is a spare and holds no rank"));
  }
  return absl::OkStatus();
}

absl::StatusOr<const Member*> Membership::CheckSender(const RankReport& report,
                                                      ReportSource source) const {
  absl::StatusOr<const Member*> member =
      source == ReportSource::kDaemon ? FindRegistered(report.member_id)
                                      : AuthenticateSession(report.member_id, report.session_token);
  if (!member.ok()) return member.status();
  if (absl::Status status = CheckEpochOf(**member, report.epoch); !status.ok()) return status;
  if (report.rank != (*member)->rank) {
    return absl::PermissionDeniedError(absl::StrCat("member ", (*member)->member_id, " holds rank ",
                                                    (*member)->rank, ", not rank ", report.rank));
  }
  return member;
}

absl::Status Membership::CheckReport(const RankReport& report, ReportSource source) const {
  if (absl::StatusOr<const Member*> sender = CheckSender(report, source); !sender.ok()) {
    return sender.status();
  }
  return EpochReadiness::Check(*plan_, report).status();
}

absl::StatusOr<v1::Phase> Membership::Report(const RankReport& report, absl::Time now,
                                             ReportSource source) {
  absl::StatusOr<const Member*> sender = CheckSender(report, source);
  if (!sender.ok()) return sender.status();
  absl::StatusOr<AgentProgress::EntriesByKind> entries = EpochReadiness::Check(*plan_, report);
  if (!entries.ok()) return entries.status();
  // A report is a sign of the member's life, a workload's too: its agent relayed it.
  Leases::Touch(*members_.FindById((*sender)->member_id), now);
  readiness_.Apply(*plan_, (*sender)->member_id, report, *entries, now);
  return phase();
}

v1::ClusterStatus Membership::Status() const {
  v1::ClusterStatus status = StatusRenderer::Render(*plan_, members_, readiness_, timeline_);
  status.set_held_members(held_);
  return status;
}

std::optional<Membership::Stall> Membership::FindStall(absl::Time now,
                                                       const v1::Deadlines& deadlines) const {
  return StallFinder::Find(*plan_, members_, readiness_, now, deadlines);
}

absl::StatusOr<v1::Phase> Membership::ApplyStall(const Stall& stall, absl::Time now) {
  Member* member = members_.FindById(stall.member->member_id);
  // The daemon wrote this report, not the agent: it is no sign of the member's life, and a
  // silent member's lease must run out as it would have.
  const absl::Time last_seen = member->last_seen;
  absl::StatusOr<v1::Phase> phase = Report(stall.report, now, ReportSource::kDaemon);
  member->last_seen = last_seen;
  return phase;
}

}  // namespace splitd::core
