#ifndef SPLITD_DAEMON_STORE_TIMED_STATE_STORE_H_
#define SPLITD_DAEMON_STORE_TIMED_STATE_STORE_H_

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/metrics.h"
#include "daemon/store/state_store.h"

namespace splitd::store {

// A StateStore that forwards every call to another one and measures its commits: how many
// changes each wrote (splitd_store_commit_changes), and for each change how long the commit that
// wrote it took (splitd_store_write_seconds{operation}) and whether it was refused
// (splitd_store_write_failures_total{operation}). A change's `operation` is that of its first
// record: put_cluster, delete_cluster, add_member, add_report, put_rendezvous_key or
// delete_rendezvous_key. Reads and empty commits are forwarded unmeasured. Durations come from
// the monotonic clock: they are observations, not inputs to any decision.
//
// Threading: as thread-safe as the wrapped store. The registry must outlive this store.
class TimedStateStore : public StateStore {
 public:
  TimedStateStore(std::unique_ptr<StateStore> store, metrics::Registry* registry);

  absl::Status Commit(absl::Span<Change> changes) override;
  absl::StatusOr<std::vector<ClusterState>> LoadClusters() const override;

 private:
  // The histogram and failure counter of one operation, looked up once.
  struct Operation {
    metrics::Histogram* seconds;
    metrics::Counter* failures;
  };
  Operation MakeOperation(const std::string& name);
  // The operation of a change; null for one without records.
  const Operation* OperationOf(const Change& change) const;

  const std::unique_ptr<StateStore> store_;
  metrics::HistogramFamily& seconds_;
  metrics::CounterFamily& failures_;
  metrics::Histogram& commit_changes_;
  const Operation put_cluster_;
  const Operation delete_cluster_;
  const Operation add_member_;
  const Operation add_report_;
  const Operation put_rendezvous_key_;
  const Operation delete_rendezvous_key_;
};

}  // namespace splitd::store

#endif  // SPLITD_DAEMON_STORE_TIMED_STATE_STORE_H_
