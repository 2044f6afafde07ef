#ifndef SPLITD_DAEMON_STORE_TIMED_STATE_STORE_H_
#define SPLITD_DAEMON_STORE_TIMED_STATE_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/metrics.h"
#include "daemon/store/state_store.h"

namespace splitd::store {

// A StateStore that forwards every call to another one and measures its writes: how long each
// took (splitd_store_write_seconds{operation}) and which failed
// (splitd_store_write_failures_total{operation}). `operation` is put_cluster, delete_cluster,
// add_member, add_report, put_rendezvous_key or delete_rendezvous_key. Reads are forwarded
// unmeasured. Durations come
// from the monotonic clock: they are observations, not inputs to any decision.
//
// Threading: as thread-safe as the wrapped store. The registry must outlive this store.
class TimedStateStore : public StateStore {
 public:
  TimedStateStore(std::unique_ptr<StateStore> store, metrics::Registry* registry);

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

 private:
  // The histogram and failure counter of one operation, looked up once.
  struct Operation {
    metrics::Histogram* seconds;
    metrics::Counter* failures;
  };
  Operation MakeOperation(const std::string& name);
  // Runs `write`, timing it into `operation`.
  template <typename Write>
  absl::Status Measure(const Operation& operation, Write write);

  const std::unique_ptr<StateStore> store_;
  metrics::HistogramFamily& seconds_;
  metrics::CounterFamily& failures_;
  const Operation put_cluster_;
  const Operation delete_cluster_;
  const Operation add_member_;
  const Operation add_report_;
  const Operation put_rendezvous_key_;
  const Operation delete_rendezvous_key_;
};

}  // namespace splitd::store

#endif  // SPLITD_DAEMON_STORE_TIMED_STATE_STORE_H_
