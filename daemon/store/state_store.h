#ifndef SPLITD_DAEMON_STORE_STATE_STORE_H_
#define SPLITD_DAEMON_STORE_STATE_STORE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/store/cluster_record.h"

namespace splitd::store {

// Where the daemon's state lives. A write returns only once it is as durable as the
// implementation promises; callers publish a change only after the write succeeded.
// Implementations are thread-safe. Every implementation passes state_store_conformance.h.
class StateStore {
 public:
  virtual ~StateStore() = default;

  // Inserts or replaces the record keyed by record.topology.cluster().
  // UNAVAILABLE or RESOURCE_EXHAUSTED when the store cannot take writes.
  virtual absl::Status PutCluster(const ClusterRecord& record) = 0;

  // Removes a cluster. NOT_FOUND when there is none of that name.
  virtual absl::Status DeleteCluster(const std::string& name) = 0;

  // Every cluster, sorted by name.
  virtual absl::StatusOr<std::vector<ClusterRecord>> LoadClusters() const = 0;
};

}  // namespace splitd::store

#endif  // SPLITD_DAEMON_STORE_STATE_STORE_H_
