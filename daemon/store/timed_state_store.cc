#include "daemon/store/timed_state_store.h"

#include <chrono>
#include <string>
#include <utility>

namespace splitd::store {
namespace {

// A tenth of a millisecond (memory, page cache) to ten seconds (fsync on a struggling disk).
const std::vector<double>& WriteBounds() {
  static const auto* bounds = new std::vector<double>{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};
  return *bounds;
}

// One change (no grouping) to 4096, in powers of two.
std::vector<double> CommitChangesBounds() {
  std::vector<double> bounds;
  for (double bound = 1; bound <= 4096; bound *= 2) bounds.push_back(bound);
  return bounds;
}

}  // namespace

TimedStateStore::TimedStateStore(std::unique_ptr<StateStore> store, metrics::Registry* registry)
    : store_(std::move(store)),
      seconds_(registry->AddHistogram(
          "splitd_store_write_seconds",
          "Time the store commit that wrote a state change took, by the change's operation.",
          {"operation"}, WriteBounds())),
      failures_(registry->AddCounter("splitd_store_write_failures_total",
                                     "State changes the store refused, by operation.",
                                     {"operation"})),
      commit_changes_(registry
                          ->AddHistogram("splitd_store_commit_changes",
                                         "Changes written by one store commit (one append and "
                                         "one sync).",
                                         {}, CommitChangesBounds())
                          .WithLabels({})),
      put_cluster_(MakeOperation("put_cluster")),
      delete_cluster_(MakeOperation("delete_cluster")),
      add_member_(MakeOperation("add_member")),
      add_report_(MakeOperation("add_report")),
      put_rendezvous_key_(MakeOperation("put_rendezvous_key")),
      delete_rendezvous_key_(MakeOperation("delete_rendezvous_key")) {}

TimedStateStore::Operation TimedStateStore::MakeOperation(const std::string& name) {
  return Operation{&seconds_.WithLabels({name}), &failures_.WithLabels({name})};
}

const TimedStateStore::Operation* TimedStateStore::OperationOf(const Change& change) const {
  if (change.records.empty()) return nullptr;
  const internal::LogRecord& record = change.records.front();
  switch (record.change_case()) {
    case internal::LogRecord::kPutCluster:
      return &put_cluster_;
    case internal::LogRecord::kDeleteCluster:
      return &delete_cluster_;
    case internal::LogRecord::kAddMember:
      return &add_member_;
    case internal::LogRecord::kAddReport:
      return &add_report_;
    case internal::LogRecord::kPutKey:
      return record.put_key().deleted() ? &delete_rendezvous_key_ : &put_rendezvous_key_;
    case internal::LogRecord::CHANGE_NOT_SET:
      break;
  }
  return nullptr;
}

absl::Status TimedStateStore::Commit(absl::Span<Change> changes) {
  if (changes.empty()) return store_->Commit(changes);
  const auto start = std::chrono::steady_clock::now();
  absl::Status status = store_->Commit(changes);
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  commit_changes_.Observe(static_cast<double>(changes.size()));
  for (const Change& change : changes) {
    const Operation* operation = OperationOf(change);
    if (operation == nullptr) continue;
    operation->seconds->Observe(elapsed.count());
    if (!change.status.ok()) operation->failures->Increment();
  }
  return status;
}

absl::StatusOr<std::vector<ClusterState>> TimedStateStore::LoadClusters() const {
  return store_->LoadClusters();
}

}  // namespace splitd::store
