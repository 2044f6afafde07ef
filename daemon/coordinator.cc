#include "daemon/coordinator.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/await_callback.h"
#include "common/bearer_token.h"
#include "common/random.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "daemon/core/rank_report.h"
#include "daemon/core/status_fields.h"
#include "daemon/report_conversion.h"
#include "daemon/store/records.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "plan/split_planner.h"
#include "plan/topology_validator.h"
#include "spdlog/spdlog.h"

namespace splitd::daemon {
namespace {

using core::ToTimestamp;

// Two normalized topologies describe the same document when their deterministic encodings agree.
std::string Encode(const v1::Topology& topology) {
  std::string bytes;
  google::protobuf::io::StringOutputStream stream(&bytes);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  topology.SerializeToCodedStream(&coded);
  coded.Trim();
  return bytes;
}

// A report as the store keeps it: without the sender's session token (the store keeps no
// secrets; replayed reports are the daemon's own, ReportSource::kDaemon).
v1::ReportGroupStatusRequest WithoutSessionToken(const v1::ReportGroupStatusRequest& request) {
  v1::ReportGroupStatusRequest stored = request;
  stored.mutable_member()->clear_session_token();
  return stored;
}

}  // namespace

absl::Status Coordinator::CheckName(const std::string& field, const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " must not be empty"));
  if (name.size() > static_cast<size_t>(plan::kMaxNameLength)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be at most ", plan::kMaxNameLength, " characters"));
  }
  return absl::OkStatus();
}

absl::Status Coordinator::NotFound(const std::string& name) {
  return absl::NotFoundError(absl::StrCat("cluster \"", name, "\" not found"));
}

Coordinator::Coordinator(store::StateStore* store, const Clock* clock, EventLog* events)
    : store_(store),
      clock_(clock),
      owned_events_(events == nullptr ? std::make_unique<EventLog>() : nullptr),
      events_(events == nullptr ? owned_events_.get() : events),
      commits_(store) {
  commits_.SetFailureHandler([this](const absl::Status& failure) { TakeBack(failure); });
}

std::shared_ptr<Coordinator::ClusterEntry> Coordinator::MakeEntry(store::ClusterRecord record,
                                                                  plan::SplitPlan plan) {
  auto entry = std::make_shared<ClusterEntry>();
  entry->plan = std::make_shared<const plan::SplitPlan>(std::move(plan));
  v1::WatchPlanResponse plan_only;
  v1::Plan& agent_plan = *plan_only.mutable_plan();
  agent_plan = plan::PlanView::ToAgentProto(*entry->plan);
  agent_plan.set_shrinks_epoch(record.shrinks_epoch);
  for (int64_t rank : record.previous_ranks) agent_plan.add_previous_ranks(rank);
  agent_plan.set_reason(record.reason);
  // A message with only its `plan` set encodes to exactly that field.
  entry->agent_plan_field = std::make_shared<const std::string>(plan_only.SerializeAsString());
  entry->record = std::move(record);
  return entry;
}

void Coordinator::Publish(const ClusterChange& change) {
  for (const Announcement& announcement : change.announcements) {
    if (!announcement.line.empty()) {
      if (announcement.level == Announcement::Level::kWarn) {
        spdlog::warn("{}", announcement.line);
      } else {
        spdlog::info("{}", announcement.line);
      }
    }
    if (announcement.event.has_value()) events_->Append(*announcement.event, clock_->Now());
  }
  if (change.notice.has_value()) Notify(*change.notice);
}

absl::StatusOr<Coordinator::LoadedState> Coordinator::Load(absl::Time now) const {
  ASSIGN_OR_RETURN(std::vector<store::ClusterState> states, store_->LoadClusters());
  LoadedState loaded;
  for (store::ClusterState& state : states) {
    store::ClusterRecord& record = state.record;
    const std::string name = record.topology.cluster();
    absl::StatusOr<plan::SplitPlan> plan =
        plan::SplitPlanner::Build(record.PlanTopology(), record.epoch);
    if (!plan.ok()) {
      return absl::DataLossError(
          absl::StrCat("stored cluster \"", name, "\" no longer plans: ", plan.status().message()));
    }
    std::shared_ptr<ClusterEntry> entry = MakeEntry(std::move(record), *std::move(plan));
    // Replaying the admitted members and the epoch's reports through the same pure logic
    // rebuilds the same ranks and readiness. Every member's lease starts afresh now.
    auto membership = std::make_unique<core::Membership>(entry->plan);
    for (const store::StoredMember& member : state.members) {
      absl::StatusOr<core::Membership::Registration> replayed =
          membership->Replay(member.identity, member.capabilities, member.registered, now,
                             member.session_token_sha256);
      if (!replayed.ok()) {
        return absl::DataLossError(
            absl::StrCat("stored member ", member.identity.pod(), " of cluster \"", name,
                         "\" does not replay: ", replayed.status().message()));
      }
      ++loaded.members;
    }
    membership->Exclude(entry->record.excluded);
    membership->StartEpoch(entry->plan, entry->record.update_time, entry->record.assignment);
    membership->SetEpochCause(entry->record.reason, 0, 0);
    for (const v1::ReportGroupStatusRequest& report : state.reports) {
      absl::StatusOr<v1::Phase> replayed =
          membership->Report(ToRankReport(report), now, core::Membership::ReportSource::kDaemon);
      if (!replayed.ok()) {
        loaded.warnings.push_back(absl::StrCat("cluster ", name, ": a stored report of rank ",
                                               report.rank(),
                                               " does not replay: ", replayed.status().ToString()));
      }
      ++loaded.reports;
    }
    // Deadlines, like leases, count afresh: agents could not report while the daemon was down.
    membership->Resume(now);
    if (!state.rendezvous.empty()) {
      loaded.spaces.push_back(
          RecoveredSpace{name, entry->record.epoch, std::move(state.rendezvous)});
    }
    loaded.memberships[name] = std::move(membership);
    loaded.clusters[name] = std::move(entry);
  }
  return loaded;
}

absl::Status Coordinator::Recover() {
  absl::MutexLock write_lock(&write_mu_);
  ASSIGN_OR_RETURN(LoadedState loaded, Load(clock_->Now()));
  for (const std::string& warning : loaded.warnings) spdlog::warn("{}", warning);
  const size_t clusters = loaded.clusters.size();
  {
    absl::MutexLock lock(&mu_);
    memberships_ = std::move(loaded.memberships);
    clusters_ = std::move(loaded.clusters);
    recovered_spaces_ = std::move(loaded.spaces);
    recovered_ = true;
  }
  spdlog::info("recovered {} cluster(s), {} member(s), {} report(s)", clusters, loaded.members,
               loaded.reports);
  return absl::OkStatus();
}

void Coordinator::TakeBack(const absl::Status& failure) {
  absl::Status reloaded;
  {
    absl::MutexLock lock(&mu_);
    // Every change still queued was computed on the state being taken back.
    commits_.FailQueued(failure);
    absl::StatusOr<LoadedState> loaded = Load(clock_->Now());
    if (loaded.ok()) {
      memberships_ = std::move(loaded->memberships);
      clusters_ = std::move(loaded->clusters);
    } else {
      // The store no longer loads: refuse everything rather than serve a state it does not hold.
      recovered_ = false;
      reloaded = loaded.status();
    }
  }
  spdlog::error("a state change was not stored ({}); the state went back to the stored one{}",
                failure.ToString(),
                reloaded.ok() ? "" : absl::StrCat(", which does not load: ", reloaded.ToString()));
}

std::vector<Coordinator::RecoveredSpace> Coordinator::TakeRecoveredSpaces() {
  absl::MutexLock lock(&mu_);
  return std::move(recovered_spaces_);
}

Coordinator::WhenDurable Coordinator::PersistRendezvousKey(const std::string& cluster,
                                                           int64_t epoch, const std::string& key,
                                                           const std::string& value) {
  return QueueKeyRecord(store::PutKeyRecord(cluster, epoch, key, value));
}

Coordinator::WhenDurable Coordinator::PersistRendezvousKeyDeletion(const std::string& cluster,
                                                                   int64_t epoch,
                                                                   const std::string& key) {
  return QueueKeyRecord(store::DeleteKeyRecord(cluster, epoch, key));
}

Coordinator::WhenDurable Coordinator::QueueKeyRecord(internal::LogRecord record) {
  GroupCommit::TicketPtr ticket = commits_.Enqueue({std::move(record)}, /*critical=*/false);
  return [this, ticket](std::function<void(absl::Status)> done) {
    commits_.OnSettled(ticket, std::move(done));
  };
}

absl::Status Coordinator::CheckRecovered() const {
  absl::MutexLock lock(&mu_);
  if (!recovered_) return absl::UnavailableError("daemon is starting: state not loaded yet");
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const Coordinator::ClusterEntry>> Coordinator::Find(
    const std::string& name) const {
  std::shared_ptr<const ClusterEntry> entry;
  GroupCommit::TicketPtr pending;
  {
    absl::MutexLock lock(&mu_);
    if (!recovered_) return absl::UnavailableError("daemon is starting: state not loaded yet");
    auto it = clusters_.find(name);
    if (it == clusters_.end()) return NotFound(name);
    entry = it->second;
    pending = commits_.Pending();
  }
  // Nothing is answered from a change that is not durable yet.
  RETURN_IF_ERROR(commits_.AwaitState(pending));
  return entry;
}

absl::StatusOr<Coordinator::ApplyResult> Coordinator::ApplyTopology(const v1::Topology& topology,
                                                                    const JoinToken& join) {
  RETURN_IF_ERROR(CheckRecovered());
  ASSIGN_OR_RETURN(v1::Topology normalized, plan::TopologyValidator::Normalize(topology));
  if (!join.token.empty()) RETURN_IF_ERROR(CheckTokenText(join.token, "join_token"));

  absl::MutexLock write_lock(&write_mu_);
  const std::string name = normalized.cluster();
  std::shared_ptr<const ClusterEntry> current;
  {
    absl::MutexLock lock(&mu_);
    auto it = clusters_.find(name);
    if (it != clusters_.end()) current = it->second;
  }
  const std::string join_digest = !join.token.empty()  ? Sha256::Hex(join.token)
                                  : current != nullptr ? current->record.join_token_sha256
                                                       : std::string();
  if (join.required && join_digest.empty()) {
    return absl::InvalidArgumentError(
        "join_token is required: this daemon authorizes agents (--admin_token_file), so every "
        "cluster needs a join token (splitctl apply --join_token_file)");
  }
  if (current != nullptr && Encode(current->record.topology) == Encode(normalized)) {
    return ApplySameTopology(std::move(current), join_digest);
  }

  const int64_t epoch = current == nullptr ? 1 : current->record.epoch + 1;
  ASSIGN_OR_RETURN(plan::SplitPlan plan, plan::SplitPlanner::Build(normalized, epoch));

  store::ClusterRecord record;
  record.topology = std::move(normalized);
  record.epoch = epoch;
  record.update_time = clock_->Now();
  record.create_time = current == nullptr ? record.update_time : current->record.create_time;
  record.reason = current == nullptr ? "topology applied" : "topology changed";
  if (current != nullptr) record.excluded = current->record.excluded;
  record.join_token_sha256 = join_digest;
  // Outside the lock: the agents' plan is O(world).
  std::shared_ptr<ClusterEntry> entry = MakeEntry(std::move(record), std::move(plan));
  v1::Phase phase;
  ClusterChange change;
  GroupCommit::TicketPtr ticket;
  {
    absl::MutexLock lock(&mu_);
    auto it = clusters_.find(name);
    if ((it == clusters_.end() ? nullptr : it->second) != current) {
      return absl::AbortedError("the cluster changed while the topology was applied; try again");
    }
    // The ranks the new epoch starts with are stored with it.
    auto membership = memberships_.find(name);
    if (membership != memberships_.end()) {
      entry->record.assignment = membership->second->DefaultAssignment(*entry->plan);
    }
    change = ApplyEpochLocked(entry, /*created=*/current == nullptr);
    phase = memberships_.at(name)->phase();
    ticket = Stage(&change);
  }
  // Durable before anyone hears of it: no reader sees an epoch the store does not hold.
  RETURN_IF_ERROR(commits_.Wait(ticket));
  Publish(change);
  return ApplyResult{ToProto(*entry, phase), /*created=*/current == nullptr, /*changed=*/true};
}

absl::StatusOr<Coordinator::ApplyResult> Coordinator::ApplySameTopology(
    std::shared_ptr<const ClusterEntry> current, const std::string& join_digest) {
  const std::string name = current->record.topology.cluster();
  GroupCommit::TicketPtr ticket;
  v1::Phase phase;
  ClusterChange change;
  const bool replaced = join_digest != current->record.join_token_sha256;
  {
    absl::MutexLock lock(&mu_);
    auto it = clusters_.find(name);
    if (it == clusters_.end() || it->second != current) {
      return absl::AbortedError("the cluster changed while the topology was applied; try again");
    }
    if (replaced) {
      // A new join token alone: stored at the same epoch.
      store::ClusterRecord record = current->record;
      record.join_token_sha256 = join_digest;
      change.records.push_back(store::PutClusterRecord(record));
      change.Add(said::Note(absl::StrCat("cluster ", name, ": join token replaced")));
      ticket = Stage(&change);
      it->second = current = WithRecord(*current, std::move(record));
    } else {
      ticket = commits_.Pending();
    }
    phase = memberships_.at(name)->phase();
  }
  if (replaced) {
    RETURN_IF_ERROR(commits_.Wait(ticket));
    Publish(change);
  } else {
    RETURN_IF_ERROR(commits_.AwaitState(ticket));
  }
  return ApplyResult{ToProto(*current, phase), /*created=*/false, /*changed=*/false};
}

std::shared_ptr<Coordinator::ClusterEntry> Coordinator::WithRecord(const ClusterEntry& entry,
                                                                   store::ClusterRecord record) {
  auto copy = std::make_shared<ClusterEntry>();
  copy->plan = entry.plan;
  copy->agent_plan_field = entry.agent_plan_field;
  copy->record = std::move(record);
  return copy;
}

ClusterChange Coordinator::ApplyEpochLocked(const std::shared_ptr<ClusterEntry>& entry,
                                            bool created) {
  const std::string& name = entry->record.topology.cluster();
  clusters_[name] = entry;
  std::unique_ptr<core::Membership>& membership = memberships_[name];
  if (membership == nullptr) {
    membership = std::make_unique<core::Membership>(entry->plan);
    membership->StartEpoch(entry->plan, entry->record.update_time);
  } else {
    membership->StartEpoch(entry->plan, entry->record.update_time, entry->record.assignment);
  }
  membership->SetEpochCause(entry->record.reason, 0, 0);
  ClusterChange change;
  change.records.push_back(store::PutClusterRecord(entry->record));
  change.Add(
      said::TopologyApplied(*entry->plan, entry->record.reason, membership->phase(), created));
  change.notice = ClusterEvent{name, entry->record.epoch, /*deleted=*/false};
  return change;
}

absl::StatusOr<v1::Cluster> Coordinator::GetCluster(const std::string& name) const {
  RETURN_IF_ERROR(CheckName("name", name));
  ASSIGN_OR_RETURN(std::shared_ptr<const ClusterEntry> entry, Find(name));
  absl::MutexLock lock(&mu_);
  auto membership = memberships_.find(name);
  return ToProto(
      *entry, membership == memberships_.end() ? v1::PHASE_PENDING : membership->second->phase());
}

absl::StatusOr<std::vector<v1::Cluster>> Coordinator::ListClusters() const {
  std::vector<std::pair<std::shared_ptr<const ClusterEntry>, v1::Phase>> entries;
  {
    absl::MutexLock lock(&mu_);
    if (!recovered_) return absl::UnavailableError("daemon is starting: state not loaded yet");
    for (const auto& [name, entry] : clusters_) {
      entries.emplace_back(entry, memberships_.at(name)->phase());
    }
  }
  std::vector<v1::Cluster> clusters;
  clusters.reserve(entries.size());
  for (const auto& [entry, phase] : entries) clusters.push_back(ToProto(*entry, phase));
  return clusters;
}

absl::StatusOr<int64_t> Coordinator::DeleteCluster(const std::string& name) {
  RETURN_IF_ERROR(CheckName("name", name));
  absl::MutexLock write_lock(&write_mu_);
  ASSIGN_OR_RETURN(std::shared_ptr<const ClusterEntry> entry, Find(name));
  ClusterChange change;
  change.records.push_back(store::DeleteClusterRecord(name));
  change.Add(said::ClusterDeleted(name, entry->record.epoch));
  change.notice = ClusterEvent{name, entry->record.epoch, /*deleted=*/true};
  GroupCommit::TicketPtr ticket;
  {
    absl::MutexLock lock(&mu_);
    auto it = clusters_.find(name);
    if (it == clusters_.end() || it->second != entry) {
      return absl::AbortedError("the cluster changed while it was deleted; try again");
    }
    clusters_.erase(it);
    memberships_.erase(name);
    ticket = Stage(&change);
  }
  RETURN_IF_ERROR(commits_.Wait(ticket));
  Publish(change);
  return entry->record.epoch;
}

absl::StatusOr<v1::Plan> Coordinator::GetPlan(const std::string& name,
                                              const plan::PlanFilter& filter) const {
  RETURN_IF_ERROR(CheckName("cluster", name));
  ASSIGN_OR_RETURN(std::shared_ptr<const ClusterEntry> entry, Find(name));
  return plan::PlanView::ToProto(*entry->plan, filter);
}

absl::StatusOr<v1::ClusterStatus> Coordinator::GetStatus(
    const std::string& name, const core::HangAttribution::WaitingKeys& waiting_keys) const {
  RETURN_IF_ERROR(CheckName("cluster", name));
  ASSIGN_OR_RETURN(std::shared_ptr<const ClusterEntry> entry, Find(name));
  v1::ClusterStatus status;
  {
    absl::MutexLock lock(&mu_);
    auto membership = memberships_.find(name);
    if (membership == memberships_.end()) return NotFound(name);
    status = membership->second->Status();
  }
  core::HangAttribution::Fill(waiting_keys, clock_->Now(), &status);
  return status;
}

absl::StatusOr<int64_t> Coordinator::CurrentEpoch(const std::string& name) const {
  RETURN_IF_ERROR(CheckName("cluster", name));
  ASSIGN_OR_RETURN(std::shared_ptr<const ClusterEntry> entry, Find(name));
  return entry->record.epoch;
}

void Coordinator::SetEventListener(EventListener listener) { listener_ = std::move(listener); }

void Coordinator::Notify(const ClusterEvent& event) const {
  if (listener_) listener_(event);
}

absl::StatusOr<core::Membership*> Coordinator::FindMembership(
    const v1::MemberCredentials& member) const {
  if (!recovered_) return absl::UnavailableError("daemon is starting: state not loaded yet");
  if (member.cluster().empty()) {
    return absl::InvalidArgumentError("member.cluster must not be empty");
  }
  if (member.member_id().empty()) {
    return absl::InvalidArgumentError("member.member_id must not be empty");
  }
  if (member.session_token().empty()) {
    return absl::UnauthenticatedError("member.session_token must not be empty");
  }
  auto it = memberships_.find(member.cluster());
  if (it != memberships_.end()) {
    const core::Member* named = it->second->FindById(member.member_id());
    if (named != nullptr && SameSecret(named->session_token_sha256,
                                       core::SessionTokens::Digest(member.session_token()))) {
      return it->second.get();
    }
  }
  // Not this member's session. Another member's (of any cluster) may not act for it.
  if (HoldsAgentToken(member.session_token(), /*join_digest=*/"")) {
    return absl::PermissionDeniedError(
        absl::StrCat("member.session_token belongs to another member; member \"",
                     absl::CHexEscape(member.member_id()), "\" of cluster \"",
                     absl::CHexEscape(member.cluster()), "\" may be acted for only by itself"));
  }
  if (it == memberships_.end()) return NotFound(member.cluster());
  return absl::UnauthenticatedError(
      "member.session_token is not a valid session (expired, or issued before the daemon lost "
      "its state); register again");
}

bool Coordinator::HoldsAgentToken(const std::string& token, const std::string& join_digest) const {
  bool found = false;
  for (const auto& [name, membership] : memberships_) {
    found |= membership->SessionHolder(token) != nullptr;
  }
  if (!join_digest.empty()) {
    for (const auto& [name, entry] : clusters_) {
      found |= SameSecret(entry->record.join_token_sha256, join_digest);
    }
  }
  return found;
}

bool Coordinator::IsAgentToken(const std::string& token) const {
  if (token.empty()) return false;
  const std::string digest = Sha256::Hex(token);
  absl::MutexLock lock(&mu_);
  return HoldsAgentToken(token, digest);
}

absl::StatusOr<std::string> Coordinator::JoinTokenDigest(const std::string& cluster) const {
  RETURN_IF_ERROR(CheckRecovered());
  if (cluster.empty()) return absl::InvalidArgumentError("identity.cluster must not be empty");
  absl::MutexLock lock(&mu_);
  auto it = clusters_.find(cluster);
  if (it == clusters_.end()) return NotFound(cluster);
  return it->second->record.join_token_sha256;
}

absl::StatusOr<v1::RegisterResponse> Coordinator::Register(const v1::RegisterRequest& request) {
  return AwaitCallback<absl::StatusOr<v1::RegisterResponse>>(
      [&](auto done) { Register(request, std::move(done)); });
}

void Coordinator::Register(const v1::RegisterRequest& request, Done<v1::RegisterResponse> done) {
  absl::StatusOr<StagedRegistration> staged = StageRegistration(request);
  if (!staged.ok()) {
    done(staged.status());
    return;
  }
  auto shared = std::make_shared<StagedRegistration>(*std::move(staged));
  auto finish = [this, shared, cluster = request.identity().cluster(),
                 done = std::move(done)](absl::Status status) {
    if (!status.ok()) {
      done(status);
      return;
    }
    Publish(shared->change);
    if (shared->reconcile) Reconcile(cluster, 0);
    done(std::move(shared->response));
  };
  if (shared->wrote) {
    commits_.OnSettled(shared->ticket, std::move(finish));
  } else {
    commits_.OnState(shared->ticket, std::move(finish));
  }
}

absl::StatusOr<Coordinator::StagedRegistration> Coordinator::StageRegistration(
    const v1::RegisterRequest& request) {
  const v1::MemberIdentity& identity = request.identity();
  if (identity.cluster().empty()) {
    return absl::InvalidArgumentError("identity.cluster must not be empty");
  }
  const std::string token = RandomHex(32);
  StagedRegistration staged;
  absl::MutexLock lock(&mu_);
  if (!recovered_) return absl::UnavailableError("daemon is starting: state not loaded yet");
  auto it = memberships_.find(identity.cluster());
  if (it == memberships_.end()) return NotFound(identity.cluster());
  core::Membership& membership = *it->second;
  std::shared_ptr<const ClusterEntry> entry = clusters_.at(identity.cluster());
  const absl::Time now = clock_->Now();
  ASSIGN_OR_RETURN(const core::Member* existing,
                   membership.CheckRegister(identity, request.capabilities()));
  ASSIGN_OR_RETURN(core::Membership::Registration registration,
                   membership.Register(identity, request.capabilities(), now, token));
  HeardFrom(now);
  ClusterChange& change = staged.change;
  if (existing == nullptr) {
    // A new member is durable before it gets its answer.
    change.records.push_back(store::AddMemberRecord(
        identity.cluster(), store::StoredMember{identity, request.capabilities(),
                                                core::SessionTokens::Digest(token), now}));
  }
  const int64_t epoch = membership.plan().epoch;
  if (registration.assigned) {
    // The ranks this registration completed are durable with it.
    store::ClusterRecord record = entry->record;
    record.assignment = membership.Assignment();
    change.records.push_back(store::PutClusterRecord(record));
    clusters_[identity.cluster()] = WithRecord(*entry, std::move(record));
    change.notice = ClusterEvent{identity.cluster(), epoch, /*deleted=*/false};
  }
  const core::Member& member = *registration.member;
  change.Add(said::Registered(identity,
                              said::Admitted{&member, registration.rejoined, registration.returned,
                                             registration.assigned, epoch, membership.phase()}));
  // A new spare or a returning member may let the policy grow or heal the cluster, unless this
  // registration is the one that assigned the ranks.
  core::Occurrence occurrence;
  occurrence.assigned = membership.assigned() && !registration.assigned;
  occurrence.spare_joined = !registration.rejoined && member.rank < 0;
  occurrence.member_returned = registration.returned;
  staged.reconcile = core::ElasticPolicy::DecisionDue(occurrence);
  staged.wrote = !change.records.empty();
  staged.ticket = staged.wrote ? Stage(&change) : commits_.Pending();
  staged.response.set_member_id(member.member_id);
  staged.response.set_session_token(member.session_token);
  staged.response.set_heartbeat_interval_ms(
      entry->record.topology.elastic().heartbeat_interval_ms());
  return staged;
}

absl::StatusOr<std::optional<Coordinator::PlanForMember>> Coordinator::NextPlan(
    const v1::MemberCredentials& member, int64_t known_epoch) const {
  std::shared_ptr<const ClusterEntry> entry;
  int64_t rank = -1;
  GroupCommit::TicketPtr pending;
  {
    absl::MutexLock lock(&mu_);
    // FindMembership has checked the session: the member exists and holds this token.
    ASSIGN_OR_RETURN(core::Membership * membership, FindMembership(member));
    const core::Member* found = membership->FindById(member.member_id());
    if (!membership->assigned() || membership->plan().epoch <= known_epoch) return std::nullopt;
    entry = clusters_.at(member.cluster());
    rank = found->rank;
    pending = commits_.Pending();
  }
  // A plan goes out only once its epoch and ranks are durable.
  RETURN_IF_ERROR(commits_.AwaitState(pending));
  return PlanForMember{entry->agent_plan_field, entry->record.epoch, rank};
}

absl::StatusOr<v1::HeartbeatResponse> Coordinator::Heartbeat(const v1::HeartbeatRequest& request) {
  v1::HeartbeatResponse response;
  ClusterChange change;  // no records: liveness is not stored
  bool decide = false;
  {
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(core::Membership * membership, FindMembership(request.member()));
    const absl::Time now = clock_->Now();
    ASSIGN_OR_RETURN(core::Membership::HeartbeatResult result,
                     membership->Heartbeat(request.member(), now));
    HeardFrom(now);
    const v1::Elastic& elastic =
        clusters_.at(request.member().cluster())->record.topology.elastic();
    response.set_epoch(result.epoch);
    response.set_lease_remaining_ms(elastic.lease_timeout_ms());
    response.set_heartbeat_interval_ms(elastic.heartbeat_interval_ms());
    if (result.member->liveness == core::Liveness::kExcluded) {
      response.set_excluded(true);
      response.set_reason(absl::StrCat("member ", result.member->member_id,
                                       " was excluded from cluster \"", request.member().cluster(),
                                       "\""));
    }
    if (result.returned) {
      change.Add(said::HeartbeatsAgain(request.member().cluster(), result.epoch, *result.member,
                                       membership->phase()));
      core::Occurrence occurrence;
      occurrence.assigned = membership->assigned();
      occurrence.member_returned = true;
      decide = core::ElasticPolicy::DecisionDue(occurrence);
    }
  }
  Publish(change);
  if (decide) Reconcile(request.member().cluster(), 0);
  return response;
}

absl::StatusOr<v1::ReportGroupStatusResponse> Coordinator::ReportGroupStatus(
    const v1::ReportGroupStatusRequest& request) {
  return AwaitCallback<absl::StatusOr<v1::ReportGroupStatusResponse>>(
      [&](auto done) { ReportGroupStatus(request, std::move(done)); });
}

void Coordinator::ReportGroupStatus(const v1::ReportGroupStatusRequest& request,
                                    Done<v1::ReportGroupStatusResponse> done) {
  struct Staged {
    v1::Phase phase = v1::PHASE_UNSPECIFIED;
    ClusterChange change;
    GroupCommit::TicketPtr ticket;
  };
  auto staged = std::make_shared<Staged>();
  absl::Status refused = [&]() -> absl::Status {
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(core::Membership * membership, FindMembership(request.member()));
    const absl::Time now = clock_->Now();
    ASSIGN_OR_RETURN(staged->change, ReportChange(request, now, membership));
    HeardFrom(now);
    staged->phase = membership->phase();
    staged->ticket = Stage(&staged->change);
    return absl::OkStatus();
  }();
  if (!refused.ok()) {
    done(refused);
    return;
  }
  commits_.OnSettled(staged->ticket, [this, staged, done = std::move(done)](absl::Status status) {
    if (!status.ok()) {
      done(status);
      return;
    }
    Publish(staged->change);
    v1::ReportGroupStatusResponse response;
    response.set_cluster_phase(staged->phase);
    done(std::move(response));
  });
}

absl::StatusOr<ClusterChange> Coordinator::ReportChange(const v1::ReportGroupStatusRequest& request,
                                                        absl::Time now,
                                                        core::Membership* membership) {
  const v1::Phase before = membership->phase();
  const core::RankReport report = ToRankReport(request);
  RETURN_IF_ERROR(membership->CheckReport(report));
  ASSIGN_OR_RETURN(const v1::Phase phase, membership->Report(report, now));
  ClusterChange change;
  // Durable before it is answered or announced; Recover replays it.
  change.records.push_back(store::AddReportRecord(request.member().cluster(), request.epoch(),
                                                  WithoutSessionToken(request)));
  if (phase != before) {
    change.Add(said::PhaseChanged(request.member().cluster(), request.epoch(), phase,
                                  membership->Timings(),
                                  phase == v1::PHASE_FAILED ? membership->reason() : ""));
  }
  return change;
}

absl::Status Coordinator::AuthorizeRendezvous(const v1::MemberCredentials& member,
                                              int64_t epoch) const {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(core::Membership * membership, FindMembership(member));
  return membership->CheckRendezvous(member, epoch);
}

v1::Cluster Coordinator::ToProto(const ClusterEntry& entry, v1::Phase phase) {
  v1::Cluster cluster;
  cluster.set_name(entry.record.topology.cluster());
  *cluster.mutable_topology() = entry.record.topology;
  cluster.set_epoch(entry.record.epoch);
  cluster.set_fingerprint(entry.plan->fingerprint);
  cluster.set_state(phase);
  cluster.set_world_size(entry.plan->world_size);
  cluster.set_group_kinds(static_cast<int64_t>(entry.plan->kinds.size()));
  *cluster.mutable_create_time() = ToTimestamp(entry.record.create_time);
  *cluster.mutable_update_time() = ToTimestamp(entry.record.update_time);
  *cluster.mutable_plan_topology() = entry.record.PlanTopology();
  cluster.set_join_token_set(!entry.record.join_token_sha256.empty());
  return cluster;
}

Coordinator::Counts Coordinator::CountClustersAndMembers() const {
  Counts counts;
  absl::MutexLock lock(&mu_);
  for (const auto& [name, membership] : memberships_) {
    ++counts.clusters_by_phase[membership->phase()];
    const core::Membership::LivenessCounts members = membership->CountByLiveness();
    counts.alive_members += members.alive;
    counts.lost_members += members.lost;
    counts.excluded_members += members.excluded;
  }
  return counts;
}

}  // namespace splitd::daemon
