#ifndef SPLITD_DAEMON_STORE_RECORD_STORE_H_
#define SPLITD_DAEMON_STORE_RECORD_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "daemon/store/state_store.h"
#include "daemon/store/store_state.h"

namespace splitd::store {

// A StateStore that turns every write into one LogRecord: checked against the current state,
// handed to Persist (which makes it durable, or not), then applied. Subclasses decide what
// Persist does. Thread-safe: writes are serialized, so records persist in apply order.
class RecordStore : public StateStore {
 public:
  absl::Status PutCluster(const ClusterRecord& record) override;
  absl::Status DeleteCluster(const std::string& name) override;
  absl::Status AddMember(const std::string& cluster, const StoredMember& member) override;
  absl::Status AddReport(const std::string& cluster, int64_t epoch,
                         const v1::ReportGroupStatusRequest& report) override;
  absl::Status PutRendezvousKey(const std::string& cluster, int64_t epoch, const std::string& key,
                                const std::string& value) override;
  absl::Status DeleteRendezvousKey(const std::string& cluster, int64_t epoch,
                                   const std::string& key) override;
  absl::StatusOr<std::vector<ClusterState>> LoadClusters() const override;

 protected:
  // Makes `record` (its sequence number set) durable before it is applied; an error leaves the
  // state as it was.
  virtual absl::Status Persist(const internal::LogRecord& record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;

  absl::Status Commit(internal::LogRecord record);

  mutable absl::Mutex mu_;
  StoreState state_ ABSL_GUARDED_BY(mu_);
  uint64_t last_sequence_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace splitd::store

#endif  // SPLITD_DAEMON_STORE_RECORD_STORE_H_
