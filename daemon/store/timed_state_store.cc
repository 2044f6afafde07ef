#include "daemon/store/timed_state_store.h"

#include <chrono>
#include <utility>

namespace splitd::store {
namespace {

// A tenth of a millisecond (memory, page cache) to ten seconds (fsync on a struggling disk).
const std::vector<double>& WriteBounds() {
  static const auto* bounds = new std::vector<double>{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};
  return *bounds;
}

}  // namespace

TimedStateStore::TimedStateStore(std::unique_ptr<StateStore> store, metrics::Registry* registry)
    : store_(std::move(store)),
      seconds_(registry->AddHistogram("splitd_store_write_seconds",
                                      "Time a durable state write took, by operation.",
                                      {"operation"}, WriteBounds())),
      failures_(registry->AddCounter("splitd_store_write_failures_total",
                                     "State writes the store refused, by operation.",
                                     {"operation"})),
      put_cluster_(MakeOperation("put_cluster")),
      delete_cluster_(MakeOperation("delete_cluster")),
      add_member_(MakeOperation("add_member")),
      add_report_(MakeOperation("add_report")),
      put_rendezvous_key_(MakeOperation("put_rendezvous_key")),
      delete_rendezvous_key_(MakeOperation("delete_rendezvous_key")) {}

TimedStateStore::Operation TimedStateStore::MakeOperation(const std::string& name) {
  return Operation{&seconds_.WithLabels({name}), &failures_.WithLabels({name})};
}

template <typename Write>
absl::Status TimedStateStore::Measure(const Operation& operation, Write write) {
  const auto start = std::chrono::steady_clock::now();
  absl::Status status = write();
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  operation.seconds->Observe(elapsed.count());
  if (!status.ok()) operation.failures->Increment();
  return status;
}

absl::Status TimedStateStore::PutCluster(const ClusterRecord& record) {
  return Measure(put_cluster_, [&] { return store_->PutCluster(record); });
}

absl::Status TimedStateStore::DeleteCluster(const std::string& name) {
  return Measure(delete_cluster_, [&] { return store_->DeleteCluster(name); });
}

absl::Status TimedStateStore::AddMember(const std::string& cluster, const StoredMember& member) {
  return Measure(add_member_, [&] { return store_->AddMember(cluster, member); });
}

absl::Status TimedStateStore::AddReport(const std::string& cluster, int64_t epoch,
                                        const v1::ReportGroupStatusRequest& report) {
  return Measure(add_report_, [&] { return store_->AddReport(cluster, epoch, report); });
}

absl::Status TimedStateStore::PutRendezvousKey(const std::string& cluster, int64_t epoch,
                                               const std::string& key, const std::string& value) {
  return Measure(put_rendezvous_key_,
                 [&] { return store_->PutRendezvousKey(cluster, epoch, key, value); });
}

absl::Status TimedStateStore::DeleteRendezvousKey(const std::string& cluster, int64_t epoch,
                                                  const std::string& key) {
  return Measure(delete_rendezvous_key_,
                 [&] { return store_->DeleteRendezvousKey(cluster, epoch, key); });
}

absl::StatusOr<std::vector<ClusterState>> TimedStateStore::LoadClusters() const {
  return store_->LoadClusters();
}

}  // namespace splitd::store
