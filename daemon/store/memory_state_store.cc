#include "daemon/store/memory_state_store.h"

#include "absl/strings/str_cat.h"

namespace splitd::store {

absl::Status MemoryStateStore::PutCluster(const ClusterRecord& record) {
  if (record.topology.cluster().empty()) {
    return absl::InvalidArgumentError("record.topology.cluster must not be empty");
  }
  absl::MutexLock lock(&mu_);
  clusters_[record.topology.cluster()] = record;
  return absl::OkStatus();
}

absl::Status MemoryStateStore::DeleteCluster(const std::string& name) {
  absl::MutexLock lock(&mu_);
  if (clusters_.erase(name) == 0) {
    return absl::NotFoundError(absl::StrCat("cluster \"", name, "\" not found"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ClusterRecord>> MemoryStateStore::LoadClusters() const {
  absl::MutexLock lock(&mu_);
  std::vector<ClusterRecord> records;
  records.reserve(clusters_.size());
  for (const auto& [name, record] : clusters_) records.push_back(record);
  return records;
}

}  // namespace splitd::store
