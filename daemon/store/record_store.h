#ifndef SPLITD_DAEMON_STORE_RECORD_STORE_H_
#define SPLITD_DAEMON_STORE_RECORD_STORE_H_

#include <cstdint>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "daemon/store/state_store.h"
#include "daemon/store/store_state.h"

namespace splitd::store {

// A StateStore that keeps its state as the LogRecords committed to it. A commit checks and
// applies each change's records in turn (taking back a change whose records do not all apply),
// numbers the accepted records consecutively, and hands them all to Persist at once, which makes
// them durable, or not: then every accepted change is taken back. Subclasses decide what Persist
// does. Thread-safe: commits are serialized, so records persist in apply order.
class RecordStore : public StateStore {
 public:
  absl::Status Commit(absl::Span<Change> changes) override;
  absl::StatusOr<std::vector<ClusterState>> LoadClusters() const override;

 protected:
  // Makes `records` durable: the accepted records of one commit, in order, already applied to
  // state_ with their sequence numbers set (last_sequence_ is that of the last one). Never
  // empty. An error makes the commit take every one of them back.
  virtual absl::Status Persist(const std::vector<const internal::LogRecord*>& records)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;

  // Refuses a record that this store could not write (one over its size limit, say), as Check
  // refuses one that does not apply. Called before the record is applied, its sequence number
  // set. OK by default.
  virtual absl::Status CheckWritable(const internal::LogRecord& record) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  StoreState state_ ABSL_GUARDED_BY(mu_);
  uint64_t last_sequence_ ABSL_GUARDED_BY(mu_) = 0;

 private:
  // Applies the records of `change`, numbering them on from last_sequence_, into `undo`. When one
  // does not apply, takes back the others, restores last_sequence_ and returns why.
  absl::Status ApplyChangeLocked(Change& change, UndoLog* undo) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
};

}  // namespace splitd::store

#endif  // SPLITD_DAEMON_STORE_RECORD_STORE_H_
