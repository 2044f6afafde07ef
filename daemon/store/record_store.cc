#include "daemon/store/record_store.h"

#include <utility>

namespace splitd::store {

absl::Status RecordStore::CheckWritable(const internal::LogRecord&) const {
  return absl::OkStatus();
}

absl::Status RecordStore::ApplyChangeLocked(Change& change, UndoLog* undo) {
  const uint64_t first_sequence = last_sequence_;
  for (internal::LogRecord& record : change.records) {
    record.set_sequence(last_sequence_ + 1);
    absl::Status status = state_.Check(record);
    if (status.ok()) status = CheckWritable(record);
    if (!status.ok()) {
      state_.Revert(undo);
      last_sequence_ = first_sequence;
      return status;
    }
    state_.Apply(record, undo);
    last_sequence_ = record.sequence();
  }
  return absl::OkStatus();
}

absl::Status RecordStore::Commit(absl::Span<Change> changes) {
  absl::MutexLock lock(&mu_);
  const uint64_t first_sequence = last_sequence_;
  std::vector<UndoLog> undo(changes.size());
  std::vector<size_t> accepted;
  std::vector<const internal::LogRecord*> records;
  for (size_t i = 0; i < changes.size(); ++i) {
    changes[i].status = ApplyChangeLocked(changes[i], &undo[i]);
    if (!changes[i].status.ok()) continue;
    accepted.push_back(i);
    for (const internal::LogRecord& record : changes[i].records) records.push_back(&record);
  }
  if (records.empty()) return absl::OkStatus();

  const absl::Status persisted = Persist(records);
  if (persisted.ok()) return absl::OkStatus();
  for (auto i = accepted.rbegin(); i != accepted.rend(); ++i) {
    state_.Revert(&undo[*i]);
    changes[*i].status = persisted;
  }
  last_sequence_ = first_sequence;
  return persisted;
}

absl::StatusOr<std::vector<ClusterState>> RecordStore::LoadClusters() const {
  absl::MutexLock lock(&mu_);
  return state_.Clusters();
}

}  // namespace splitd::store
