#ifndef SPLITD_DAEMON_STORE_MEMORY_STATE_STORE_H_
#define SPLITD_DAEMON_STORE_MEMORY_STATE_STORE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "daemon/store/state_store.h"

namespace splitd::store {

// StateStore that keeps everything in process memory: nothing survives a restart.
// For tests, and for daemons started without a durable store. Thread-safe.
class MemoryStateStore : public StateStore {
 public:
  absl::Status PutCluster(const ClusterRecord& record) override;
  absl::Status DeleteCluster(const std::string& name) override;
  absl::StatusOr<std::vector<ClusterRecord>> LoadClusters() const override;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, ClusterRecord> clusters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace splitd::store

#endif  // SPLITD_DAEMON_STORE_MEMORY_STATE_STORE_H_
