#include "daemon/core/membership.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/same_secret.h"
#include "common/sha256.h"
#include "plan/topology_validator.h"
#include "daemon/core/status_fields.h"

namespace splitd::core {
namespace {

constexpr absl::string_view kFieldPrefix = "identity.";

absl::Status CheckText(absl::string_view field, const std::string& value, bool required) {
  if (required && value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must not be empty"));
  }
  if (static_cast<int64_t>(value.size()) > kMaxIdentityFieldLength) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be at most ",
                                                   kMaxIdentityFieldLength, " bytes, got ",
                                                   value.size()));
  }
  return absl::OkStatus();
}

// "SPLITTING" for PHASE_SPLITTING.
std::string PhaseName(v1::Phase phase) {
  std::string name = v1::Phase_Name(phase);
  return name.rfind("PHASE_", 0) == 0 ? name.substr(6) : name;
}

}  // namespace

Membership::Membership(std::shared_ptr<const plan::SplitPlan> plan) : plan_(std::move(plan)) {}

absl::Status Membership::CheckIdentity(const v1::MemberIdentity& identity) const {
  if (identity.cluster() != plan_->cluster) {
    return absl::InvalidArgumentError(absl::StrCat("identity.cluster \"",
                                                   absl::CHexEscape(identity.cluster()),
                                                   "\" is not \"", plan_->cluster, "\""));
  }
  const std::pair<absl::string_view, const std::string*> fields[] = {
      {"pod", &identity.pod()},
      {"node", &identity.node()},
      {"host", &identity.host()},
      {"incarnation", &identity.incarnation()},
  };
  for (const auto& [name, value] : fields) {
    if (absl::Status status = CheckText(absl::StrCat(kFieldPrefix, name), *value, true);
        !status.ok()) {
      return status;
    }
  }
  if (identity.local_index() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("identity.local_index must be >= 0, got ", identity.local_index()));
  }
  return absl::OkStatus();
}

absl::StatusOr<const Member*> Membership::CheckRegister(
    const v1::MemberIdentity& identity, const v1::Capabilities& capabilities) const {
  if (absl::Status status = CheckIdentity(identity); !status.ok()) return status;
  if (capabilities.backends_size() > kMaxBackends) {
    return absl::InvalidArgumentError(absl::StrCat("capabilities.backends must have at most ",
                                                   kMaxBackends, " entries, got ",
                                                   capabilities.backends_size()));
  }
  for (int i = 0; i < capabilities.backends_size(); ++i) {
    if (absl::Status status = CheckText(absl::StrCat("capabilities.backends[", i, "]"),
                                        capabilities.backends(i), true);
        !status.ok()) {
      return status;
    }
  }
  if (absl::Status status =
          CheckText("capabilities.device_type", capabilities.device_type(), false);
      !status.ok()) {
    return status;
  }

  if (auto it = by_incarnation_.find(identity.incarnation()); it != by_incarnation_.end()) {
    const Member* member = it->second;
    if (member->identity.node() != identity.node() ||
        member->identity.local_index() != identity.local_index()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "incarnation ", identity.incarnation(), " registered before as node \"",
          member->identity.node(), "\" local_index ", member->identity.local_index()));
    }
    if (member->liveness == Liveness::kExcluded) {
      return absl::FailedPreconditionError(absl::StrCat(
          "member ", member->member_id, " (incarnation ", identity.incarnation(),
          ") was excluded from cluster \"", plan_->cluster, "\""));
    }
    return member;
  }
  if (auto it = by_slot_.find({identity.node(), identity.local_index()});
      it != by_slot_.end() && it->second->liveness == Liveness::kAlive) {
    const Member* other = it->second;
    return absl::AlreadyExistsError(absl::StrCat(
        "node \"", identity.node(), "\" local_index ", identity.local_index(),
        " is held by member ", other->member_id, " (pod \"", other->identity.pod(), "\")"));
  }
  if (AliveCount() >= plan_->world_size + kMaxSpares) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cluster \"", plan_->cluster, "\" has ", AliveCount(),
        " alive members, the world size plus ", kMaxSpares, " spares"));
  }
  return nullptr;
}

absl::StatusOr<Membership::Registration> Membership::Register(
    const v1::MemberIdentity& identity, const v1::Capabilities& capabilities, absl::Time now,
    const std::string& session_token) {
  absl::StatusOr<const Member*> existing = CheckRegister(identity, capabilities);
  if (!existing.ok()) return existing.status();
  if (*existing != nullptr) {
    Member* member = by_incarnation_.at(identity.incarnation());
    member->last_seen = now;
    const bool returned = member->liveness == Liveness::kLost;
    member->liveness = Liveness::kAlive;
    Registration registration{member, /*rejoined=*/true, returned, /*assigned=*/false};
    if (!assigned_ && AliveCount() >= plan_->world_size) {
      AssignRanks({}, now);
      registration.assigned = true;
    }
    return registration;
  }

  auto member = std::make_unique<Member>();
  member->order = static_cast<int64_t>(members_.size());
  member->member_id = absl::StrCat("m-", member->order);
  member->session_token = session_token;
  member->identity = identity;
  member->capabilities = capabilities;
  member->registered = now;
  member->last_seen = now;
  Member* added = member.get();
  members_.push_back(std::move(member));
  by_incarnation_[identity.incarnation()] = added;
  by_id_[added->member_id] = added;
  by_session_digest_[Sha256::Hex(session_token)] = added;
  by_slot_[{identity.node(), identity.local_index()}] = added;

  Registration registration{added, /*rejoined=*/false, /*returned=*/false, /*assigned=*/false};
  if (!assigned_ && AliveCount() >= plan_->world_size) {
    AssignRanks({}, now);
    registration.assigned = true;
  }
  return registration;
}

absl::StatusOr<Membership::Registration> Membership::Replay(
    const v1::MemberIdentity& identity, const v1::Capabilities& capabilities,
    absl::Time registered, absl::Time now, const std::string& session_token) {
  if (auto it = by_slot_.find({identity.node(), identity.local_index()});
      it != by_slot_.end() && it->second->liveness == Liveness::kAlive &&
      it->second->identity.incarnation() != identity.incarnation()) {
    it->second->liveness = Liveness::kLost;
  }
  absl::StatusOr<Registration> registration =
      Register(identity, capabilities, now, session_token);
  if (registration.ok()) {
    by_id_.at(registration->member->member_id)->registered = registered;
  }
  return registration;
}

int64_t Membership::AliveCount() const {
  int64_t alive = 0;
  for (const auto& member : members_) alive += member->liveness == Liveness::kAlive ? 1 : 0;
  return alive;
}

std::vector<std::string> Membership::DefaultAssignment(const plan::SplitPlan& plan) const {
  std::vector<const Member*> chosen;
  for (const auto& member : members_) {
    if (member->liveness != Liveness::kAlive) continue;
    if (static_cast<int64_t>(chosen.size()) < plan.world_size) chosen.push_back(member.get());
  }
  if (static_cast<int64_t>(chosen.size()) < plan.world_size) return {};
  std::sort(chosen.begin(), chosen.end(), [](const Member* a, const Member* b) {
    return std::make_tuple(a->identity.node(), a->identity.local_index(), a->order) <
           std::make_tuple(b->identity.node(), b->identity.local_index(), b->order);
  });
  std::vector<std::string> ids;
  ids.reserve(chosen.size());
  for (const Member* member : chosen) ids.push_back(member->member_id);
  return ids;
}

std::vector<std::string> Membership::Assignment() const {
  std::vector<std::string> ids;
  ids.reserve(by_rank_.size());
  for (const Member* member : by_rank_) ids.push_back(member->member_id);
  return ids;
}

std::vector<const Member*> Membership::Spares() const {
  std::vector<const Member*> spares;
  for (const auto& member : members_) {
    if (member->liveness == Liveness::kAlive && member->rank < 0) spares.push_back(member.get());
  }
  std::sort(spares.begin(), spares.end(), [](const Member* a, const Member* b) {
    return std::make_tuple(a->identity.node(), a->identity.local_index(), a->order) <
           std::make_tuple(b->identity.node(), b->identity.local_index(), b->order);
  });
  return spares;
}

const Member* Membership::FindById(const std::string& member_id) const {
  auto it = by_id_.find(member_id);
  return it == by_id_.end() ? nullptr : it->second;
}

std::vector<const Member*> Membership::ExpireLeases(absl::Time now, absl::Duration lease) {
  std::vector<const Member*> lost;
  for (const auto& member : members_) {
    if (member->liveness == Liveness::kAlive && now - member->last_seen > lease) {
      member->liveness = Liveness::kLost;
      lost.push_back(member.get());
    }
  }
  return lost;
}

bool Membership::HasMissingRank() const {
  for (const Member* member : by_rank_) {
    if (member->liveness != Liveness::kAlive) return true;
  }
  return false;
}

std::vector<const Member*> Membership::Exclude(const std::vector<std::string>& member_ids) {
  std::vector<const Member*> excluded;
  for (const std::string& id : member_ids) {
    auto it = by_id_.find(id);
    if (it == by_id_.end() || it->second->liveness == Liveness::kExcluded) continue;
    it->second->liveness = Liveness::kExcluded;
    excluded.push_back(it->second);
  }
  return excluded;
}

void Membership::Resume(absl::Time now) {
  if (!assigned_) return;
  assigned_at_ = std::max(assigned_at_, now);
  agents_.Resume(now);
  workload_.Resume(now);
}

void Membership::SetEpochCause(const std::string& reason, double detect_ms, double plan_ms) {
  epoch_reason_ = reason;
  detect_ms_ = detect_ms;
  plan_ms_ = plan_ms;
}

v1::EpochTimings Membership::Timings() const {
  v1::EpochTimings timings;
  timings.set_detect_ms(detect_ms_);
  timings.set_plan_ms(plan_ms_);
  if (!assigned_) return timings;
  const double started_ms = absl::ToDoubleMilliseconds(epoch_started_ - absl::UnixEpoch());
  double received = 0;
  for (const AgentProgress::Rank& state : agents_.ranks()) {
    const v1::PhaseTimings& t = state.timings;
    received = std::max(received, t.plan_received_unix_ms());
    timings.set_bootstrap_ms(std::max(timings.bootstrap_ms(), t.bootstrap_ms()));
    timings.set_split_ms(std::max(timings.split_ms(), t.split_ms()));
    timings.set_validate_ms(std::max(timings.validate_ms(), t.validate_ms()));
  }
  if (received > 0 && epoch_started_ != absl::InfinitePast()) {
    timings.set_deliver_ms(std::max(0.0, received - started_ms));
  }
  if (ready_at_ != absl::InfinitePast() && epoch_started_ != absl::InfinitePast()) {
    timings.set_ready_ms(absl::ToDoubleMilliseconds(ready_at_ - epoch_started_));
  }
  return timings;
}

void Membership::AssignRanks(const std::vector<Member*>& given, absl::Time now) {
  std::vector<Member*> chosen = given;
  if (chosen.empty()) {
    for (const std::string& id : DefaultAssignment(*plan_)) chosen.push_back(by_id_.at(id));
  }
  for (const auto& member : members_) member->rank = -1;
  by_rank_ = chosen;
  for (size_t rank = 0; rank < chosen.size(); ++rank) chosen[rank]->rank = static_cast<int64_t>(rank);
  // The plan reaches the agents when their ranks are assigned: PLANNED starts then, which is
  // the epoch's start unless the epoch had to wait for members.
  agents_.Reset(*plan_, now);
  workload_.Reset(*plan_, now);
  workload_failed_ = false;
  assigned_at_ = now;
  reason_.clear();
  assigned_ = true;
}

void Membership::StartEpoch(std::shared_ptr<const plan::SplitPlan> plan, absl::Time now,
                            const std::vector<std::string>& assignment) {
  plan_ = std::move(plan);
  assigned_ = false;
  by_rank_.clear();
  agents_.Clear();
  workload_failed_ = false;
  assigned_at_ = absl::InfinitePast();
  reason_.clear();
  degraded_reason_.clear();
  epoch_reason_.clear();
  detect_ms_ = 0;
  plan_ms_ = 0;
  epoch_started_ = now;
  ready_at_ = absl::InfinitePast();
  for (const auto& member : members_) member->rank = -1;
  std::vector<Member*> chosen;
  for (const std::string& id : assignment) {
    auto it = by_id_.find(id);
    if (it != by_id_.end()) chosen.push_back(it->second);
  }
  if (!chosen.empty() && static_cast<int64_t>(chosen.size()) == plan_->world_size) {
    AssignRanks(chosen, now);
  } else if (AliveCount() >= plan_->world_size) {
    AssignRanks({}, now);
  }
}

absl::StatusOr<Member*> Membership::FindMember(const v1::MemberCredentials& credentials) {
  if (credentials.member_id().empty()) {
    return absl::InvalidArgumentError("member.member_id must not be empty");
  }
  if (credentials.session_token().empty()) {
    return absl::UnauthenticatedError("member.session_token must not be empty");
  }
  auto it = by_id_.find(credentials.member_id());
  if (it == by_id_.end()) {
    return absl::NotFoundError(absl::StrCat("member \"", absl::CHexEscape(credentials.member_id()),
                                            "\" is not registered in cluster \"",
                                            plan_->cluster, "\""));
  }
  if (!SameSecret(it->second->session_token, credentials.session_token())) {
    return absl::UnauthenticatedError(
        absl::StrCat("member.session_token is wrong for member ", credentials.member_id()));
  }
  return it->second;
}

absl::StatusOr<const Member*> Membership::Authenticate(
    const v1::MemberCredentials& credentials) const {
  absl::StatusOr<Member*> member = const_cast<Membership*>(this)->FindMember(credentials);
  if (!member.ok()) return member.status();
  return *member;
}

const Member* Membership::SessionHolder(const std::string& token) const {
  auto it = by_session_digest_.find(Sha256::Hex(token));
  return it == by_session_digest_.end() ? nullptr : it->second;
}

Membership::LivenessCounts Membership::CountByLiveness() const {
  LivenessCounts counts;
  for (const auto& [id, member] : by_id_) {
    switch (member->liveness) {
      case Liveness::kAlive:
        ++counts.alive;
        break;
      case Liveness::kLost:
        ++counts.lost;
        break;
      case Liveness::kExcluded:
        ++counts.excluded;
        break;
    }
  }
  return counts;
}

absl::StatusOr<Membership::HeartbeatResult> Membership::Heartbeat(
    const v1::MemberCredentials& credentials, absl::Time now) {
  absl::StatusOr<Member*> found = FindMember(credentials);
  if (!found.ok()) return found.status();
  Member* member = *found;
  HeartbeatResult result{plan_->epoch, member, /*returned=*/false};
  if (member->liveness == Liveness::kExcluded) return result;
  member->last_seen = now;
  if (member->liveness == Liveness::kLost) {
    member->liveness = Liveness::kAlive;
    result.returned = true;
  }
  return result;
}

absl::Status Membership::CheckRendezvous(const v1::MemberCredentials& credentials,
                                         int64_t epoch) const {
  absl::StatusOr<const Member*> member = Authenticate(credentials);
  if (!member.ok()) return member.status();
  if (epoch < plan_->epoch) {
    return absl::AbortedError(absl::StrCat("epoch ", epoch, " is over; cluster \"",
                                           plan_->cluster, "\" is at epoch ", plan_->epoch));
  }
  if (epoch > plan_->epoch) {
    return absl::FailedPreconditionError(absl::StrCat("epoch ", epoch, " has not started; cluster \"",
                                                      plan_->cluster, "\" is at epoch ",
                                                      plan_->epoch));
  }
  if (!assigned_) {
    return absl::FailedPreconditionError(
        absl::StrCat("ranks of epoch ", epoch, " are not assigned yet"));
  }
  if ((*member)->liveness == Liveness::kExcluded) {
    return absl::PermissionDeniedError(
        absl::StrCat("member ", (*member)->member_id, " was excluded from the cluster"));
  }
  if ((*member)->rank < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("member ", (*member)->member_id, " is a spare and holds no rank"));
  }
  return absl::OkStatus();
}

void Membership::NoteFailure(const std::optional<std::string>& failure) {
  if (failure.has_value() && reason_.empty()) reason_ = *failure;
}

absl::StatusOr<v1::Phase> Membership::Report(const v1::ReportGroupStatusRequest& request,
                                             absl::Time now) {
  return ReportImpl(request, now, /*apply=*/true);
}

absl::Status Membership::CheckReport(const v1::ReportGroupStatusRequest& request) const {
  return const_cast<Membership*>(this)
      ->ReportImpl(request, absl::InfinitePast(), /*apply=*/false)
      .status();
}

absl::StatusOr<v1::Phase> Membership::ReportImpl(const v1::ReportGroupStatusRequest& request,
                                                 absl::Time now, bool apply) {
  absl::StatusOr<Member*> found = FindMember(request.member());
  if (!found.ok()) return found.status();
  Member* member = *found;
  if (absl::Status status = CheckRendezvous(request.member(), request.epoch()); !status.ok()) {
    return status;
  }
  if (request.rank() != member->rank) {
    return absl::PermissionDeniedError(absl::StrCat("member ", member->member_id, " holds rank ",
                                                    member->rank, ", not rank ", request.rank()));
  }
  if (!IsReportPhase(request.phase())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "phase must be one of BOOTSTRAPPING, SPLITTING, VALIDATING, READY, FAILED, got ",
        v1::Phase_Name(request.phase())));
  }
  if (request.fingerprint().empty()) {
    return absl::InvalidArgumentError("fingerprint must not be empty");
  }
  if (request.layer() == v1::REPORT_LAYER_UNSPECIFIED) {
    absl::StatusOr<AgentProgress::EntriesByKind> entries =
        AgentProgress::CheckGroups(*plan_, request);
    if (!entries.ok()) return entries.status();
    if (!apply) return phase();
    member->last_seen = now;
    NoteFailure(agents_.Apply(*plan_, member->member_id, request, *entries, now));
  } else if (request.layer() == v1::REPORT_LAYER_WORKLOAD) {
    if (absl::Status status = WorkloadProgress::CheckGroups(*plan_, request.rank(), request);
        !status.ok()) {
      return status;
    }
    if (!apply) return phase();
    // Relayed by the agent: as much a sign of its life as its own reports.
    member->last_seen = now;
    std::optional<std::string> failure = workload_.Apply(*plan_, request, now);
    if (WaitsForWorkload()) {
      workload_failed_ = workload_failed_ || failure.has_value();
      NoteFailure(failure);
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("layer must be REPORT_LAYER_UNSPECIFIED (the agent's) or "
                     "REPORT_LAYER_WORKLOAD, got ",
                     static_cast<int>(request.layer())));
  }
  if (phase() == v1::PHASE_READY && ready_at_ == absl::InfinitePast()) ready_at_ = now;
  return phase();
}

bool Membership::WaitsForWorkload() const {
  return plan::TopologyValidator::Readiness(plan_->topology) == plan::kReadinessWorkload;
}

v1::Phase Membership::phase() const {
  if (!assigned_) return v1::PHASE_PENDING;
  if (!degraded_reason_.empty()) return v1::PHASE_DEGRADED;
  if (agents_.count(v1::PHASE_FAILED) > 0 || workload_failed_) return v1::PHASE_FAILED;
  // READY is final for the epoch (short of a failure): a workload restarting afterwards shows
  // in the workload layer's phase, not as an epoch going back.
  if (ready_at_ != absl::InfinitePast()) return v1::PHASE_READY;
  if (agents_.count(v1::PHASE_READY) == plan_->world_size) {
    // Every agent is done; what is left is the workloads' own groups.
    return WaitsForWorkload() && workload_.count(v1::PHASE_READY) < plan_->world_size
               ? v1::PHASE_VALIDATING
               : v1::PHASE_READY;
  }
  // The epoch is as far as its slowest rank.
  for (int phase = v1::PHASE_PLANNED; phase <= v1::PHASE_READY; ++phase) {
    if (agents_.count(static_cast<v1::Phase>(phase)) > 0) return static_cast<v1::Phase>(phase);
  }
  return v1::PHASE_PLANNED;
}

void Membership::AddMemberStatus(const Member& member, v1::ClusterStatus* status) const {
  v1::MemberStatus* out = status->add_members();
  out->set_member_id(member.member_id);
  out->set_rank(member.rank);
  out->set_pod(member.identity.pod());
  out->set_node(member.identity.node());
  out->set_host(member.identity.host());
  out->set_local_index(member.identity.local_index());
  if (member.liveness == Liveness::kLost) {
    out->set_state(v1::MEMBER_STATE_LOST);
    status->set_lost_members(status->lost_members() + 1);
  } else if (member.liveness == Liveness::kExcluded) {
    out->set_state(v1::MEMBER_STATE_GONE);
    status->set_excluded_members(status->excluded_members() + 1);
  } else {
    out->set_state(member.rank >= 0 || !assigned_ ? v1::MEMBER_STATE_ACTIVE
                                                  : v1::MEMBER_STATE_SPARE);
  }
  *out->mutable_last_seen() = ToTimestamp(member.last_seen);
  for (const std::string& backend : member.capabilities.backends()) out->add_backends(backend);
  if (member.rank >= 0) {
    agents_.Fill(member.rank, out);
    workload_.Fill(*plan_, member.rank, out);
  } else {
    out->set_phase(v1::PHASE_PENDING);
  }
}

v1::ClusterStatus Membership::Status() const {
  v1::ClusterStatus status;
  status.set_cluster(plan_->cluster);
  status.set_epoch(plan_->epoch);
  status.set_state(phase());
  status.set_fingerprint(plan_->fingerprint);
  status.set_reason(degraded_reason_.empty() ? reason_ : degraded_reason_);
  status.set_epoch_reason(epoch_reason_);
  *status.mutable_timings() = Timings();
  status.set_world_size(plan_->world_size);
  status.set_registered_members(static_cast<int64_t>(members_.size()));
  status.set_readiness(std::string(plan::TopologyValidator::Readiness(plan_->topology)));
  status.set_workload_state(assigned_ ? workload_.LayerPhase() : v1::PHASE_UNSPECIFIED);
  if (assigned_) {
    for (const Member* member : by_rank_) AddMemberStatus(*member, &status);
    for (const auto& member : members_) {
      if (member->rank < 0) AddMemberStatus(*member, &status);
    }
  } else {
    for (const auto& member : members_) AddMemberStatus(*member, &status);
  }
  for (size_t k = 0; k < plan_->kinds.size(); ++k) {
    agents_.AddKindStatus(*plan_, k, status.add_groups());
  }
  return status;
}

std::optional<Membership::Overdue> Membership::RankOverdue(int64_t rank, absl::Time now,
                                                           const v1::Deadlines& deadlines) const {
  if (by_rank_[static_cast<size_t>(rank)]->liveness == Liveness::kExcluded) return std::nullopt;
  const AgentProgress::Rank& state = agents_.rank(rank);
  auto past = [now](absl::Time from, int64_t deadline_ms) {
    return deadline_ms > 0 && now - from > absl::Milliseconds(deadline_ms);
  };
  const v1::ReportLayer agent = v1::REPORT_LAYER_UNSPECIFIED;
  switch (state.phase) {
    case v1::PHASE_PLANNED:
    case v1::PHASE_BOOTSTRAPPING:
      // One deadline from the plan's arrival to a connected world, over both phases.
      if (!past(assigned_at_, deadlines.bootstrap_ms())) return std::nullopt;
      return Overdue{agent, state.phase, assigned_at_, deadlines.bootstrap_ms(), "bootstrap_ms"};
    case v1::PHASE_SPLITTING:
      if (!past(state.since, deadlines.split_ms())) return std::nullopt;
      return Overdue{agent, state.phase, state.since, deadlines.split_ms(), "split_ms"};
    case v1::PHASE_VALIDATING:
      if (!past(state.since, deadlines.validate_ms())) return std::nullopt;
      return Overdue{agent, state.phase, state.since, deadlines.validate_ms(), "validate_ms"};
    case v1::PHASE_READY:
      break;
    default:
      return std::nullopt;
  }
  if (!WaitsForWorkload()) return std::nullopt;
  const WorkloadProgress::Rank& workload = workload_.rank(rank);
  if (workload.phase == v1::PHASE_READY || workload.phase == v1::PHASE_FAILED) return std::nullopt;
  // The workload starts when its agent hands it the plan, at the agent's READY.
  const absl::Time from = std::max(workload.since, state.since);
  if (!past(from, deadlines.workload_ms())) return std::nullopt;
  return Overdue{v1::REPORT_LAYER_WORKLOAD, workload.phase, from, deadlines.workload_ms(),
                 "workload_ms"};
}

std::optional<Membership::Stall> Membership::FindStall(absl::Time now,
                                                       const v1::Deadlines& deadlines) const {
  const v1::Phase current = phase();
  if (current < v1::PHASE_PLANNED || current > v1::PHASE_VALIDATING) return std::nullopt;
  if (deadlines.bootstrap_ms() == 0 && deadlines.split_ms() == 0 &&
      deadlines.validate_ms() == 0 && deadlines.workload_ms() == 0) {
    return std::nullopt;
  }
  int64_t slowest = -1;
  Overdue overdue;
  for (int64_t rank = 0; rank < plan_->world_size; ++rank) {
    std::optional<Overdue> found = RankOverdue(rank, now, deadlines);
    if (found.has_value() &&
        (slowest < 0 || std::make_pair(found->layer, found->phase) <
                            std::make_pair(overdue.layer, overdue.phase))) {
      slowest = rank;
      overdue = *found;
    }
  }
  if (slowest < 0) return std::nullopt;

  const Member& member = *by_rank_[static_cast<size_t>(slowest)];
  const bool workload = overdue.layer == v1::REPORT_LAYER_WORKLOAD;
  const std::string& detail = workload ? workload_.rank(slowest).reason
                                       : agents_.rank(slowest).detail;
  Stall stall;
  stall.rank = slowest;
  stall.member = &member;
  stall.layer = overdue.layer;
  stall.phase = overdue.phase;
  stall.reason = absl::StrFormat(
      "rank %d (pod %s, node %s) stuck in %s %s%s for %.1f s: deadline %s %d", slowest,
      member.identity.pod(), member.identity.node(), workload ? "workload" : "agent",
      PhaseName(overdue.phase), detail.empty() ? "" : absl::StrCat(" (", detail, ")"),
      absl::ToDoubleSeconds(now - overdue.from), overdue.field, overdue.deadline_ms);
  v1::ReportGroupStatusRequest& report = stall.report;
  report.mutable_member()->set_cluster(plan_->cluster);
  report.mutable_member()->set_member_id(member.member_id);
  report.mutable_member()->set_session_token(member.session_token);
  report.set_epoch(plan_->epoch);
  report.set_rank(slowest);
  report.set_fingerprint(plan_->fingerprint);
  report.set_phase(v1::PHASE_FAILED);
  report.set_error(stall.reason);
  report.set_layer(overdue.layer);
  // The agent layer keeps the timings its rank reported.
  if (!workload) *report.mutable_timings() = agents_.rank(slowest).timings;
  return stall;
}

absl::StatusOr<v1::Phase> Membership::ApplyStall(const Stall& stall, absl::Time now) {
  Member* member = by_id_.at(stall.member->member_id);
  // The daemon wrote this report, not the agent: it is no sign of the member's life, and a
  // silent member's lease must run out as it would have.
  const absl::Time last_seen = member->last_seen;
  absl::StatusOr<v1::Phase> phase = Report(stall.report, now);
  member->last_seen = last_seen;
  return phase;
}

}  // namespace splitd::core
