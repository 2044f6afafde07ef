#include "daemon/store/state_store.h"

#include <utility>

#include "daemon/store/records.h"

namespace splitd::store {
namespace {

absl::Status CommitOne(StateStore& store, internal::LogRecord record) {
  Change change;
  change.records.push_back(std::move(record));
  const absl::Status committed = store.Commit(absl::MakeSpan(&change, 1));
  // Commit's own error is the change's too; it stands in should a store fail to say so.
  if (!committed.ok() && change.status.ok()) return committed;
  return change.status;
}

}  // namespace

absl::Status StateStore::PutCluster(const ClusterRecord& record) {
  return CommitOne(*this, PutClusterRecord(record));
}

absl::Status StateStore::DeleteCluster(const std::string& name) {
  return CommitOne(*this, DeleteClusterRecord(name));
}

absl::Status StateStore::AddMember(const std::string& cluster, const StoredMember& member) {
  return CommitOne(*this, AddMemberRecord(cluster, member));
}

absl::Status StateStore::AddReport(const std::string& cluster, int64_t epoch,
                                   const v1::ReportGroupStatusRequest& report) {
  return CommitOne(*this, AddReportRecord(cluster, epoch, report));
}

absl::Status StateStore::PutRendezvousKey(const std::string& cluster, int64_t epoch,
                                          const std::string& key, const std::string& value) {
  return CommitOne(*this, PutKeyRecord(cluster, epoch, key, value));
}

absl::Status StateStore::DeleteRendezvousKey(const std::string& cluster, int64_t epoch,
                                             const std::string& key) {
  return CommitOne(*this, DeleteKeyRecord(cluster, epoch, key));
}

}  // namespace splitd::store
