#include "daemon/store/record_store.h"

#include <utility>

namespace splitd::store {

absl::Status RecordStore::Commit(internal::LogRecord record) {
  absl::MutexLock lock(&mu_);
  if (absl::Status status = state_.Check(record); !status.ok()) return status;
  record.set_sequence(last_sequence_ + 1);
  if (absl::Status status = Persist(record); !status.ok()) return status;
  last_sequence_ = record.sequence();
  state_.Apply(record);
  return absl::OkStatus();
}

absl::Status RecordStore::PutCluster(const ClusterRecord& record) {
  return Commit(StoreState::PutClusterRecord(record));
}

absl::Status RecordStore::DeleteCluster(const std::string& name) {
  return Commit(StoreState::DeleteClusterRecord(name));
}

absl::Status RecordStore::AddMember(const std::string& cluster, const StoredMember& member) {
  return Commit(StoreState::AddMemberRecord(cluster, member));
}

absl::Status RecordStore::AddReport(const std::string& cluster, int64_t epoch,
                                    const v1::ReportGroupStatusRequest& report) {
  return Commit(StoreState::AddReportRecord(cluster, epoch, report));
}

absl::Status RecordStore::PutRendezvousKey(const std::string& cluster, int64_t epoch,
                                           const std::string& key, const std::string& value) {
  return Commit(StoreState::PutKeyRecord(cluster, epoch, key, value));
}

absl::Status RecordStore::DeleteRendezvousKey(const std::string& cluster, int64_t epoch,
                                              const std::string& key) {
  return Commit(StoreState::DeleteKeyRecord(cluster, epoch, key));
}

absl::StatusOr<std::vector<ClusterState>> RecordStore::LoadClusters() const {
  absl::MutexLock lock(&mu_);
  return state_.Clusters();
}

}  // namespace splitd::store
