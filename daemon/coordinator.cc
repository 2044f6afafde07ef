#include "daemon/coordinator.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
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
  ASSIGN_OR_RETURN(std::vector<store::ClusterRecord> records, store_->LoadClusters());
  std::map<std::string, std::shared_ptr<const ClusterEntry>> clusters;
  for (store::ClusterRecord& record : records) {
    absl::StatusOr<core::SplitPlan> plan = core::SplitPlanner::Build(record.topology, record.epoch);
    if (!plan.ok()) {
      return absl::DataLossError(absl::StrCat("stored cluster \"", record.topology.cluster(),
                                              "\" no longer plans: ", plan.status().message()));
    }
    auto entry = std::make_shared<ClusterEntry>();
    entry->plan = std::make_shared<const core::SplitPlan>(*std::move(plan));
    entry->record = std::move(record);
    clusters[entry->record.topology.cluster()] = std::move(entry);
  }
  absl::MutexLock lock(&mu_);
  clusters_ = std::move(clusters);
  recovered_ = true;
  spdlog::info("recovered {} cluster(s)", clusters_.size());
  return absl::OkStatus();
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
    return ApplyResult{ToProto(*current), /*created=*/false, /*changed=*/false};
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

  // Persist before publishing: no reader sees an epoch the store does not hold.
  RETURN_IF_ERROR(store_->PutCluster(entry->record));
  {
    absl::MutexLock lock(&mu_);
    clusters_[entry->record.topology.cluster()] = entry;
  }
  spdlog::info("cluster {} {} at epoch {} (world {}, {} group kinds, fingerprint {})",
               entry->record.topology.cluster(), current == nullptr ? "created" : "updated",
               epoch, entry->plan->world_size, entry->plan->kinds.size(),
               entry->plan->fingerprint.substr(0, 12));
  return ApplyResult{ToProto(*entry), /*created=*/current == nullptr, /*changed=*/true};
}

absl::StatusOr<v1::Cluster> Coordinator::GetCluster(const std::string& name) const {
  RETURN_IF_ERROR(CheckName("name", name));
  ASSIGN_OR_RETURN(std::shared_ptr<const ClusterEntry> entry, Find(name));
  return ToProto(*entry);
}

absl::StatusOr<std::vector<v1::Cluster>> Coordinator::ListClusters() const {
  std::vector<std::shared_ptr<const ClusterEntry>> entries;
  {
    absl::MutexLock lock(&mu_);
    if (!recovered_) return absl::UnavailableError("daemon is starting: state not loaded yet");
    for (const auto& [name, entry] : clusters_) entries.push_back(entry);
  }
  std::vector<v1::Cluster> clusters;
  clusters.reserve(entries.size());
  for (const auto& entry : entries) clusters.push_back(ToProto(*entry));
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
  }
  spdlog::info("cluster {} deleted at epoch {}", name, entry->record.epoch);
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
  const core::SplitPlan& plan = *entry->plan;
  v1::ClusterStatus status;
  status.set_cluster(plan.cluster);
  status.set_epoch(plan.epoch);
  // No agent has registered yet: the epoch waits for its members.
  status.set_state(v1::PHASE_PENDING);
  status.set_fingerprint(plan.fingerprint);
  status.set_world_size(plan.world_size);
  status.set_registered_members(0);
  for (const core::GroupKind& kind : plan.kinds) {
    v1::GroupKindStatus* group = status.add_groups();
    group->set_kind(kind.name);
    group->set_groups(kind.group_count());
  }
  return status;
}

v1::Cluster Coordinator::ToProto(const ClusterEntry& entry) {
  v1::Cluster cluster;
  cluster.set_name(entry.record.topology.cluster());
  *cluster.mutable_topology() = entry.record.topology;
  cluster.set_epoch(entry.record.epoch);
  cluster.set_fingerprint(entry.plan->fingerprint);
  cluster.set_state(v1::PHASE_PENDING);
  cluster.set_world_size(entry.plan->world_size);
  cluster.set_group_kinds(static_cast<int64_t>(entry.plan->kinds.size()));
  *cluster.mutable_create_time() = ToTimestamp(entry.record.create_time);
  *cluster.mutable_update_time() = ToTimestamp(entry.record.update_time);
  return cluster;
}

}  // namespace splitd::daemon
