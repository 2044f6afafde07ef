#include "daemon/core/membership.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/same_secret.h"
#include "common/sha256.h"

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

bool IsReportPhase(v1::Phase phase) {
  return phase >= v1::PHASE_BOOTSTRAPPING && phase <= v1::PHASE_FAILED;
}

std::string Short(const std::string& fingerprint) { return fingerprint.substr(0, 12); }

}  // namespace

Membership::Membership(std::shared_ptr<const SplitPlan> plan) : plan_(std::move(plan)) {}

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
      AssignRanks({});
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
    AssignRanks({});
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

std::vector<std::string> Membership::DefaultAssignment(const SplitPlan& plan) const {
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
  for (const RankState& state : ranks_) {
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

void Membership::AssignRanks(const std::vector<Member*>& given) {
  std::vector<Member*> chosen = given;
  if (chosen.empty()) {
    for (const std::string& id : DefaultAssignment(*plan_)) chosen.push_back(by_id_.at(id));
  }
  for (const auto& member : members_) member->rank = -1;
  by_rank_ = chosen;
  for (size_t rank = 0; rank < chosen.size(); ++rank) chosen[rank]->rank = static_cast<int64_t>(rank);
  ranks_.assign(static_cast<size_t>(plan_->world_size), RankState{});
  for (RankState& state : ranks_) state.kinds.resize(plan_->kinds.size());
  phase_counts_.fill(0);
  phase_counts_[v1::PHASE_PLANNED] = plan_->world_size;
  reason_.clear();
  assigned_ = true;
}

void Membership::StartEpoch(std::shared_ptr<const SplitPlan> plan, absl::Time now,
                            const std::vector<std::string>& assignment) {
  plan_ = std::move(plan);
  assigned_ = false;
  by_rank_.clear();
  ranks_.clear();
  phase_counts_.fill(0);
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
    AssignRanks(chosen);
  } else if (AliveCount() >= plan_->world_size) {
    AssignRanks({});
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

void Membership::SetRankPhase(int64_t rank, v1::Phase phase, const std::string& reason) {
  RankState& state = ranks_[static_cast<size_t>(rank)];
  --phase_counts_[state.phase];
  ++phase_counts_[phase];
  state.phase = phase;
  state.reason = reason;
  if (phase == v1::PHASE_FAILED && reason_.empty()) reason_ = reason;
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
  const int64_t rank = request.rank();
  const size_t kind_count = plan_->kinds.size();
  if (request.groups_size() > static_cast<int>(kind_count * 2)) {
    return absl::InvalidArgumentError(absl::StrCat("groups must have at most ", kind_count * 2,
                                                   " entries (kinds x backends), got ",
                                                   request.groups_size()));
  }

  // Check every entry before recording anything.
  std::vector<int> kind_of_entry;
  kind_of_entry.reserve(static_cast<size_t>(request.groups_size()));
  for (int i = 0; i < request.groups_size(); ++i) {
    const v1::GroupReport& report = request.groups(i);
    const std::string field = absl::StrCat("groups[", i, "]");
    int kind_index = -1;
    for (size_t k = 0; k < kind_count; ++k) {
      if (plan_->kinds[k].name == report.kind()) kind_index = static_cast<int>(k);
    }
    if (kind_index < 0) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".kind \"",
                                                     absl::CHexEscape(report.kind()),
                                                     "\" is not a group kind of the plan"));
    }
    const GroupKind& kind = plan_->kinds[static_cast<size_t>(kind_index)];
    if (kind.group_of_rank[static_cast<size_t>(rank)] < 0) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": rank ", rank,
                                                     " takes no part in kind ", kind.name));
    }
    bool backend_known = false;
    for (absl::string_view part : absl::StrSplit(kind.backend, ',')) {
      if (part == report.backend()) backend_known = true;
    }
    if (!backend_known) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".backend \"", absl::CHexEscape(report.backend()), "\" is not part of kind ",
          kind.name, "'s backend \"", kind.backend, "\""));
    }
    if (!IsReportPhase(report.phase())) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".phase must be one of "
                                                     "BOOTSTRAPPING..FAILED, got ",
                                                     v1::Phase_Name(report.phase())));
    }
    if (request.phase() == v1::PHASE_READY && report.phase() != v1::PHASE_READY &&
        report.phase() != v1::PHASE_FAILED) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".phase must be READY or FAILED in a "
                                                     "READY report, got ",
                                                     v1::Phase_Name(report.phase())));
    }
    kind_of_entry.push_back(kind_index);
  }

  // Entries per kind; READY needs one for every kind the rank takes part in.
  std::vector<std::vector<const v1::GroupReport*>> per_kind(kind_count);
  for (int i = 0; i < request.groups_size(); ++i) {
    per_kind[static_cast<size_t>(kind_of_entry[static_cast<size_t>(i)])].push_back(
        &request.groups(i));
  }
  if (request.phase() == v1::PHASE_READY) {
    for (size_t k = 0; k < kind_count; ++k) {
      const GroupKind& kind = plan_->kinds[k];
      if (kind.group_of_rank[static_cast<size_t>(rank)] >= 0 && per_kind[k].empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "groups: phase READY needs a report for kind ", kind.name, " of rank ", rank));
      }
    }
  }

  if (!apply) return phase();
  member->last_seen = now;
  RankState& state = ranks_[static_cast<size_t>(rank)];
  // Phases only move forward within an epoch. Agents send progress without waiting for the
  // answer, so one may arrive after a later phase; it changes nothing.
  if (request.phase() != v1::PHASE_FAILED &&
      (state.phase == v1::PHASE_FAILED || request.phase() < state.phase)) {
    return phase();
  }
  state.timings = request.timings();

  if (request.fingerprint() != plan_->fingerprint) {
    SetRankPhase(rank, v1::PHASE_FAILED,
                 absl::StrCat("rank ", rank, " (member ", member->member_id,
                              ") derived plan fingerprint ", Short(request.fingerprint()),
                              " but the plan's is ", Short(plan_->fingerprint)));
    return phase();
  }

  // Merge the entries per kind: a kind is READY only when every backend part reported READY.
  std::string failure;
  for (size_t k = 0; k < kind_count; ++k) {
    if (per_kind[k].empty()) continue;
    const GroupKind& kind = plan_->kinds[k];
    const int32_t group = kind.group_of_rank[static_cast<size_t>(rank)];
    const double size = static_cast<double>(kind.offsets[group + 1] - kind.offsets[group]);
    KindReport merged;
    merged.phase = v1::PHASE_READY;
    merged.allreduce_value = size;
    for (const v1::GroupReport* report : per_kind[k]) {
      v1::Phase phase = report->phase();
      std::string error = report->error().substr(0, kMaxReportErrorLength);
      if (phase == v1::PHASE_READY && report->allreduce_value() != size) {
        phase = v1::PHASE_FAILED;
        error = absl::StrCat("all-reduce of ones gave ", report->allreduce_value(),
                             ", expected the group size ", size);
      }
      if (phase == v1::PHASE_FAILED && failure.empty()) {
        failure = absl::StrCat("rank ", rank, " group ", kind.name, "[", group, "] (",
                               report->backend(), "): ",
                               error.empty() ? std::string("failed") : error);
      }
      if (merged.phase != v1::PHASE_FAILED && (phase == v1::PHASE_FAILED || phase < merged.phase)) {
        merged.phase = phase;
      }
      merged.allreduce_value = std::min(merged.allreduce_value, report->allreduce_value());
      merged.latency_us = std::max(merged.latency_us, report->latency_us());
      merged.bus_bandwidth_gbps = merged.bus_bandwidth_gbps == 0
                                      ? report->bus_bandwidth_gbps()
                                      : std::min(merged.bus_bandwidth_gbps,
                                                 report->bus_bandwidth_gbps());
    }
    state.kinds[k] = merged;
  }

  if (request.phase() == v1::PHASE_FAILED || !failure.empty()) {
    std::string reason = failure;
    if (reason.empty()) {
      reason = absl::StrCat("rank ", rank, " (member ", member->member_id, "): ",
                            request.error().empty()
                                ? std::string("failed")
                                : request.error().substr(0, kMaxReportErrorLength));
    }
    SetRankPhase(rank, v1::PHASE_FAILED, reason);
    return phase();
  }
  if (ranks_[static_cast<size_t>(rank)].phase != v1::PHASE_FAILED) {
    SetRankPhase(rank, request.phase(), "");
  }
  if (phase_counts_[v1::PHASE_READY] == plan_->world_size && ready_at_ == absl::InfinitePast()) {
    ready_at_ = now;
  }
  return phase();
}

v1::Phase Membership::phase() const {
  if (!assigned_) return v1::PHASE_PENDING;
  if (!degraded_reason_.empty()) return v1::PHASE_DEGRADED;
  if (phase_counts_[v1::PHASE_FAILED] > 0) return v1::PHASE_FAILED;
  if (phase_counts_[v1::PHASE_READY] == plan_->world_size) return v1::PHASE_READY;
  // The epoch is as far as its slowest rank.
  for (int phase = v1::PHASE_PLANNED; phase <= v1::PHASE_READY; ++phase) {
    if (phase_counts_[static_cast<size_t>(phase)] > 0) return static_cast<v1::Phase>(phase);
  }
  return v1::PHASE_PLANNED;
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

  auto add_member = [&](const Member& member) {
    v1::MemberStatus* out = status.add_members();
    out->set_member_id(member.member_id);
    out->set_rank(member.rank);
    out->set_pod(member.identity.pod());
    out->set_node(member.identity.node());
    out->set_host(member.identity.host());
    out->set_local_index(member.identity.local_index());
    if (member.liveness == Liveness::kLost) {
      out->set_state(v1::MEMBER_STATE_LOST);
      status.set_lost_members(status.lost_members() + 1);
    } else if (member.liveness == Liveness::kExcluded) {
      out->set_state(v1::MEMBER_STATE_GONE);
      status.set_excluded_members(status.excluded_members() + 1);
    } else {
      out->set_state(member.rank >= 0 || !assigned_ ? v1::MEMBER_STATE_ACTIVE
                                                    : v1::MEMBER_STATE_SPARE);
    }
    const int64_t seen_nanos = absl::ToUnixNanos(member.last_seen);
    out->mutable_last_seen()->set_seconds(seen_nanos / 1000000000);
    out->mutable_last_seen()->set_nanos(static_cast<int32_t>(seen_nanos % 1000000000));
    for (const std::string& backend : member.capabilities.backends()) out->add_backends(backend);
    if (member.rank >= 0) {
      const RankState& state = ranks_[static_cast<size_t>(member.rank)];
      out->set_phase(state.phase);
      out->set_reason(state.reason);
      *out->mutable_timings() = state.timings;
    } else {
      out->set_phase(v1::PHASE_PENDING);
    }
  };
  if (assigned_) {
    for (const Member* member : by_rank_) add_member(*member);
    for (const auto& member : members_) {
      if (member->rank < 0) add_member(*member);
    }
  } else {
    for (const auto& member : members_) add_member(*member);
  }

  for (size_t k = 0; k < plan_->kinds.size(); ++k) {
    const GroupKind& kind = plan_->kinds[k];
    v1::GroupKindStatus* out = status.add_groups();
    out->set_kind(kind.name);
    out->set_groups(kind.group_count());
    if (!assigned_) continue;
    int64_t ready = 0;
    int64_t failed = 0;
    double max_latency = 0;
    for (int64_t g = 0; g < kind.group_count(); ++g) {
      bool all_ready = true;
      bool any_failed = false;
      bool any_report = false;
      double value = 0;
      double bandwidth = 0;
      std::vector<double> latencies;
      for (int32_t rank : kind.group(g)) {
        const KindReport& report = ranks_[static_cast<size_t>(rank)].kinds[k];
        if (report.phase == v1::PHASE_UNSPECIFIED) {
          all_ready = false;
          continue;
        }
        any_report = true;
        if (report.phase == v1::PHASE_FAILED) any_failed = true;
        if (report.phase != v1::PHASE_READY) all_ready = false;
        value = latencies.empty() ? report.allreduce_value
                                  : std::min(value, report.allreduce_value);
        bandwidth = bandwidth == 0 ? report.bus_bandwidth_gbps
                                   : std::min(bandwidth, report.bus_bandwidth_gbps);
        latencies.push_back(report.latency_us);
      }
      if (!any_report) continue;
      std::sort(latencies.begin(), latencies.end());
      const double median = latencies[latencies.size() / 2];
      v1::GroupValidation* validation = out->add_validations();
      validation->set_group_index(g);
      validation->set_phase(any_failed ? v1::PHASE_FAILED
                                       : (all_ready ? v1::PHASE_READY : v1::PHASE_VALIDATING));
      validation->set_allreduce_value(value);
      validation->set_latency_us(median);
      validation->set_bus_bandwidth_gbps(bandwidth);
      if (any_failed) ++failed;
      if (all_ready && !any_failed) ++ready;
      max_latency = std::max(max_latency, median);
    }
    out->set_ready(ready);
    out->set_failed(failed);
    out->set_max_latency_us(max_latency);
  }
  return status;
}

}  // namespace splitd::core
