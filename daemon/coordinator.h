#ifndef SPLITD_DAEMON_COORDINATOR_H_
#define SPLITD_DAEMON_COORDINATOR_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "daemon/core/plan_view.h"
#include "daemon/core/split_plan.h"
#include "daemon/store/cluster_record.h"
#include "daemon/store/state_store.h"
#include "splitd/v1/plan.pb.h"
#include "splitd/v1/status.pb.h"
#include "splitd/v1/topology.pb.h"

namespace splitd::daemon {

// The daemon's one stateful object: owns the clusters, their current plans and the store.
// gRPC handlers call it; it never calls out while holding its state lock.
//
// Threading: every public method is thread-safe. Mutations (apply, delete) are serialized by
// `write_mu_`, which may be held across a store write; readers take only `mu_`, which is never
// held across I/O or plan computation.
class Coordinator {
 public:
  struct ApplyResult {
    v1::Cluster cluster;
    bool created = false;
    bool changed = false;
  };

  // `store` and `clock` must outlive the coordinator.
  Coordinator(store::StateStore* store, const Clock* clock);

  // Loads every cluster from the store and recomputes its plan. Until it succeeds, every other
  // call returns UNAVAILABLE.
  absl::Status Recover();

  // Creates or updates a cluster. The same (normalized) topology again is a no-op; a different
  // one starts epoch + 1. INVALID_ARGUMENT (field named) for a bad topology; nothing is stored.
  absl::StatusOr<ApplyResult> ApplyTopology(const v1::Topology& topology);

  absl::StatusOr<v1::Cluster> GetCluster(const std::string& name) const;
  absl::StatusOr<std::vector<v1::Cluster>> ListClusters() const;
  // Returns the epoch the cluster was at.
  absl::StatusOr<int64_t> DeleteCluster(const std::string& name);
  absl::StatusOr<v1::Plan> GetPlan(const std::string& name, const core::PlanFilter& filter) const;
  absl::StatusOr<v1::ClusterStatus> GetStatus(const std::string& name) const;

 private:
  struct ClusterEntry {
    store::ClusterRecord record;
    std::shared_ptr<const core::SplitPlan> plan;
  };

  absl::Status CheckRecovered() const ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::shared_ptr<const ClusterEntry>> Find(const std::string& name) const
      ABSL_LOCKS_EXCLUDED(mu_);
  static v1::Cluster ToProto(const ClusterEntry& entry);

  store::StateStore* const store_;
  const Clock* const clock_;

  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  bool recovered_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::shared_ptr<const ClusterEntry>> clusters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_COORDINATOR_H_
