#include "daemon/coordinator.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "common/random.h"
#include "common/status_macros.h"
#include "daemon/core/split_planner.h"
#include "daemon/core/topology_validator.h"
#include "spdlog/spdlog.h"

namespace splitd::daemon {
namespace {

google::protobuf::Timestamp ToTimestamp(absl::Time time) {
  google::protobuf::Timestamp ts;
  const int64_t nanos = absl::ToUnixNanos(time);
  ts.set_seconds(nanos / 1000000000);
  ts.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return ts;
}

absl::Status CheckName(const std::string& field, const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " must not be empty"));
  if (name.size() > static_cast<size_t>(core::kMaxNameLength)) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be at most ",
                                                   core::kMaxNameLength, " characters"));
  }
  return absl::OkStatus();
}

absl::Status NotFound(const std::string& name) {
  return absl::NotFoundError(absl::StrCat("cluster \"", name, "\" not found"));
}

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

}  // namespace

Coordinator::Coordinator(store::StateStore* store, const Clock* clock)
    : store_(store), clock_(clock) {}

absl::Status Coordinator::Recover() {
  absl::MutexLock write_lock(&write_mu_);
  ASSIGN_OR_RETURN(std::vector<store::ClusterState> states, store_->LoadClusters());
  std::map<std::string, std::shared_ptr<const ClusterEntry>> clusters;
  std::map<std::string, std::unique_ptr<core::Membership>> memberships;
  std::vector<RecoveredSpace> spaces;
  int64_t members = 0;
  int64_t reports = 0;
  for (store::ClusterState& state : states) {
    store::ClusterRecord& record = state.record;
    const std::string name = record.topology.cluster();
    absl::StatusOr<core::SplitPlan> plan = core::SplitPlanner::Build(record.topology, record.epoch);
    if (!plan.ok()) {
      return absl::DataLossError(absl::StrCat("stored cluster \"", name,
                                              "\" no longer plans: ", plan.status().message()));
    }
    auto entry = std::make_shared<ClusterEntry>();
    entry->plan = std::make_shared<const core::SplitPlan>(*std::move(plan));
    entry->agent_plan = core::PlanView::ToAgentProto(*entry->plan);
    entry->record = std::move(record);
    // Replaying the admitted members and the epoch's reports through the same pure logic
    // rebuilds the same ranks and readiness.
    auto membership = std::make_unique<core::Membership>(entry->plan);
    for (const store::StoredMember& member : state.members) {
      absl::StatusOr<core::Membership::Registration> replayed = membership->Register(
          member.identity, member.capabilities, member.registered, member.session_token);
      if (!replayed.ok()) {
        return absl::DataLossError(absl::StrCat("stored member ", member.identity.pod(),
                                                " of cluster \"", name, "\" does not replay: ",
                                                replayed.status().message()));
      }
      ++members;
    }
    const absl::Time now = clock_->Now();
    for (const v1::ReportGroupStatusRequest& report : state.reports) {
      absl::StatusOr<v1::Phase> replayed = membership->Report(report, now);
      if (!replayed.ok()) {
        spdlog::warn("cluster {}: a stored report of rank {} does not replay: {}", name,
                     report.rank(), replayed.status().ToString());
      }
      ++reports;
    }
    if (!state.rendezvous.empty()) {
      spaces.push_back(RecoveredSpace{name, entry->record.epoch, std::move(state.rendezvous)});
    }
    memberships[name] = std::move(membership);
    clusters[name] = std::move(entry);
  }
  absl::MutexLock lock(&mu_);
  memberships_ = std::move(memberships);
  clusters_ = std::move(clusters);
  recovered_spaces_ = std::move(spaces);
  recovered_ = true;
  spdlog::info("recovered {} cluster(s), {} member(s), {} report(s)", clusters_.size(), members,
               reports);
  return absl::OkStatus();
}

std::vector<Coordinator::RecoveredSpace> Coordinator::TakeRecoveredSpaces() {
  absl::MutexLock lock(&mu_);
  return std::move(recovered_spaces_);
}

absl::Status Coordinator::PersistRendezvousKey(const std::string& cluster, int64_t epoch,
                                               const std::string& key, const std::string& value) {
  return store_->PutRendezvousKey(cluster, epoch, key, value);
}

absl::Status Coordinator::CheckRecovered() const {
  absl::MutexLock lock(&mu_);
  if (!recovered_) return absl::UnavailableError("daemon is starting: state not loaded yet");
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const Coordinator::ClusterEntry>> Coordinator::Find(
    const std::string& name) const {
  absl::MutexLock lock(&mu_);
  if (!recovered_) return absl::UnavailableError("daemon is starting: state not loaded yet");
  auto it = clusters_.find(name);
  if (it == clusters_.end()) return NotFound(name);
  return it->second;
}

absl::StatusOr<Coordinator::ApplyResult> Coordinator::ApplyTopology(
    const v1::Topology& topology) {
  RETURN_IF_ERROR(CheckRecovered());
  ASSIGN_OR_RETURN(v1::Topology normalized, core::TopologyValidator::Normalize(topology));

  absl::MutexLock write_lock(&write_mu_);
  std::shared_ptr<const ClusterEntry> current;
  {
    absl::MutexLock lock(&mu_);
    auto it = clusters_.find(normalized.cluster());
    if (it != clusters_.end()) current = it->second;
  }
  if (current != nullptr && Encode(current->record.topology) == Encode(normalized)) {
    absl::MutexLock lock(&mu_);
    return ApplyResult{ToProto(*current, memberships_.at(normalized.cluster())->phase()),
                       /*created=*/false, /*changed=*/false};
  }

  const int64_t epoch = current == nullptr ? 1 : current->record.epoch + 1;
  ASSIGN_OR_RETURN(core::SplitPlan plan, core::SplitPlanner::Build(normalized, epoch));

  auto entry = std::make_shared<ClusterEntry>();
  entry->record.topology = std::move(normalized);
  entry->record.epoch = epoch;
  entry->record.update_time = clock_->Now();
  entry->record.create_time =
      current == nullptr ? entry->record.update_time : current->record.create_time;
  entry->plan = std::make_shared<const core::SplitPlan>(std::move(plan));
  entry->agent_plan = core::PlanView::ToAgentProto(*entry->plan);

  // Persist before publishing: no reader sees an epoch the store does not hold.
  RETURN_IF_ERROR(store_->PutCluster(entry->record));
  v1::Phase phase;
  {
    absl::MutexLock lock(&mu_);
    const std::string& name = entry->record.topology.cluster();
    clusters_[name] = entry;
    std::unique_ptr<core::Membership>& membership = memberships_[name];
    if (membership == nullptr) {
      membership = std::make_unique<core::Membership>(entry->plan);
    } else {
      membership->StartEpoch(entry->plan);
    }
    phase = membership->phase();
  }
  Notify(ClusterEvent{entry->record.topology.cluster(), epoch, /*deleted=*/false});
  spdlog::info("cluster {} {} at epoch {} (world {}, {} group kinds, fingerprint {})",
               entry->record.topology.cluster(), current == nullptr ? "created" : "updated",
               epoch, entry->plan->world_size, entry->plan->kinds.size(),
               entry->plan->fingerprint.substr(0, 12));
  return ApplyResult{ToProto(*entry, phase), /*created=*/current == nullptr, /*changed=*/true};
}

absl::StatusOr<v1::Cluster> Coordinator::GetCluster(const std::string& name) const {
  RETURN_IF_ERROR(CheckName("name", name));
  ASSIGN_OR_RETURN(std::shared_ptr<const ClusterEntry> entry, Find(name));
  absl::MutexLock lock(&mu_);
  auto membership = memberships_.find(name);
  return ToProto(*entry, membership == memberships_.end() ? v1::PHASE_PENDING
                                                          : membership->second->phase());
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
  RETURN_IF_ERROR(store_->DeleteCluster(name));
  {
    absl::MutexLock lock(&mu_);
    clusters_.erase(name);
    memberships_.erase(name);
  }
  spdlog::info("cluster {} deleted at epoch {}", name, entry->record.epoch);
  Notify(ClusterEvent{name, entry->record.epoch, /*deleted=*/true});
  return entry->record.epoch;
}

absl::StatusOr<v1::Plan> Coordinator::GetPlan(const std::string& name,
                                             const core::PlanFilter& filter) const {
  RETURN_IF_ERROR(CheckName("cluster", name));
  ASSIGN_OR_RETURN(std::shared_ptr<const ClusterEntry> entry, Find(name));
  return core::PlanView::ToProto(*entry->plan, filter);
}

absl::StatusOr<v1::ClusterStatus> Coordinator::GetStatus(const std::string& name) const {
  RETURN_IF_ERROR(CheckName("cluster", name));
  ASSIGN_OR_RETURN(std::shared_ptr<const ClusterEntry> entry, Find(name));
  absl::MutexLock lock(&mu_);
  auto membership = memberships_.find(name);
  if (membership == memberships_.end()) return NotFound(name);
  return membership->second->Status();
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
  auto it = memberships_.find(member.cluster());
  if (it == memberships_.end()) return NotFound(member.cluster());
  return it->second.get();
}

absl::StatusOr<v1::RegisterResponse> Coordinator::Register(const v1::RegisterRequest& request) {
  const v1::MemberIdentity& identity = request.identity();
  if (identity.cluster().empty()) {
    return absl::InvalidArgumentError("identity.cluster must not be empty");
  }
  const std::string token = RandomHex(32);
  v1::RegisterResponse response;
  ClusterEvent event;
  bool assigned = false;
  {
    absl::MutexLock lock(&mu_);
    if (!recovered_) return absl::UnavailableError("daemon is starting: state not loaded yet");
    auto it = memberships_.find(identity.cluster());
    if (it == memberships_.end()) return NotFound(identity.cluster());
    core::Membership& membership = *it->second;
    const absl::Time now = clock_->Now();
    ASSIGN_OR_RETURN(const core::Member* existing,
                     membership.CheckRegister(identity, request.capabilities()));
    if (existing == nullptr) {
      // A new member is durable before it is admitted (and so before it gets its answer).
      RETURN_IF_ERROR(store_->AddMember(
          identity.cluster(), store::StoredMember{identity, request.capabilities(), token, now}));
    }
    ASSIGN_OR_RETURN(core::Membership::Registration registration,
                     membership.Register(identity, request.capabilities(), now, token));
    response.set_member_id(registration.member->member_id);
    response.set_session_token(registration.member->session_token);
    response.set_heartbeat_interval_ms(absl::ToInt64Milliseconds(kHeartbeatInterval));
    assigned = registration.assigned;
    event = ClusterEvent{identity.cluster(), membership.plan().epoch, /*deleted=*/false};
    spdlog::info("cluster {}: {} {} (pod {}, node {}, local index {}){}", identity.cluster(),
                 registration.rejoined ? "member rejoined:" : "member registered:",
                 registration.member->member_id, identity.pod(), identity.node(),
                 identity.local_index(),
                 assigned ? absl::StrCat("; world complete, ranks assigned for epoch ",
                                         event.epoch)
                          : std::string());
  }
  if (assigned) Notify(event);
  return response;
}

absl::StatusOr<std::optional<v1::WatchPlanResponse>> Coordinator::NextPlan(
    const v1::MemberCredentials& member, int64_t known_epoch) const {
  std::shared_ptr<const ClusterEntry> entry;
  int64_t rank = -1;
  {
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(core::Membership * membership, FindMembership(member));
    ASSIGN_OR_RETURN(const core::Member* found, membership->Authenticate(member));
    if (!membership->assigned() || membership->plan().epoch <= known_epoch) return std::nullopt;
    entry = clusters_.at(member.cluster());
    rank = found->rank;
  }
  v1::WatchPlanResponse response;
  *response.mutable_plan() = entry->agent_plan;
  response.set_rank(rank);
  return response;
}

absl::StatusOr<v1::HeartbeatResponse> Coordinator::Heartbeat(const v1::HeartbeatRequest& request) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(core::Membership * membership, FindMembership(request.member()));
  ASSIGN_OR_RETURN(int64_t epoch, membership->Heartbeat(request.member(), clock_->Now()));
  v1::HeartbeatResponse response;
  response.set_epoch(epoch);
  response.set_lease_remaining_ms(absl::ToInt64Milliseconds(kLease));
  return response;
}

absl::StatusOr<v1::ReportGroupStatusResponse> Coordinator::ReportGroupStatus(
    const v1::ReportGroupStatusRequest& request) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(core::Membership * membership, FindMembership(request.member()));
  const v1::Phase before = membership->phase();
  RETURN_IF_ERROR(membership->CheckReport(request));
  RETURN_IF_ERROR(store_->AddReport(request.member().cluster(), request.epoch(), request));
  ASSIGN_OR_RETURN(v1::Phase phase, membership->Report(request, clock_->Now()));
  if (phase != before) {
    spdlog::info("cluster {} epoch {}: {}{}", request.member().cluster(), request.epoch(),
                 v1::Phase_Name(phase),
                 phase == v1::PHASE_FAILED ? absl::StrCat(": ", membership->reason())
                                           : std::string());
  }
  v1::ReportGroupStatusResponse response;
  response.set_cluster_phase(phase);
  return response;
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
  return cluster;
}

}  // namespace splitd::daemon
