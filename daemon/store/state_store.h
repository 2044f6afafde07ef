#ifndef SPLITD_DAEMON_STORE_STATE_STORE_H_
#define SPLITD_DAEMON_STORE_STATE_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "daemon/store/cluster_record.h"
#include "daemon/store/cluster_state.h"
#include "splitd/internal/store_records.pb.h"
#include "splitd/v1/agent_service.pb.h"

namespace splitd::store {

// The records of one call: committed together, or not at all.
struct Change {
  std::vector<internal::LogRecord> records;  // sequence numbers are the store's to set
  absl::Status status;                       // what Commit made of this change
};

// Where the daemon's state lives. A commit returns only once its changes are as durable as the
// implementation promises; callers publish a change only after it was committed, so a refused
// change changes nothing. Implementations are thread-safe and pass state_store_conformance.h.
//
// What each record means, and when it applies (records.h builds them):
// - put_cluster inserts or replaces the cluster keyed by its topology's name (INVALID_ARGUMENT
//   for an empty name or an epoch below 1). A new epoch drops the reports and rendezvous keys of
//   older ones; members stay.
// - delete_cluster removes a cluster with everything about it.
// - add_member admits a member after the ones before it.
// - add_report and put_key (a set, or a removal of a key that may be missing) belong to an
//   epoch, which must be the cluster's current one (FAILED_PRECONDITION otherwise).
// Every record but put_cluster is NOT_FOUND for an unknown cluster.
class StateStore {
 public:
  virtual ~StateStore() = default;

  // Commits `changes` in order with one append and one sync for all of them. Each change is
  // checked against the state that the accepted changes before it leave: one whose records do not
  // all apply is refused alone (its status says why; nothing of it is kept) and the others go on.
  // When the append or the sync fails, no change is applied, each accepted change gets that
  // error (RESOURCE_EXHAUSTED on a full disk, UNAVAILABLE otherwise) and Commit returns it;
  // otherwise Commit returns OK, even when some changes were refused.
  virtual absl::Status Commit(absl::Span<Change> changes) = 0;

  // Every cluster, sorted by name.
  virtual absl::StatusOr<std::vector<ClusterState>> LoadClusters() const = 0;

  // Conveniences: each commits one change of one record and returns its status.

  // Inserts or replaces the cluster keyed by record.topology.cluster(). A new epoch drops the
  // reports and rendezvous keys of older ones; members stay.
  absl::Status PutCluster(const ClusterRecord& record);

  // Removes a cluster with everything about it. NOT_FOUND when there is none of that name.
  absl::Status DeleteCluster(const std::string& name);

  // Admits a member of `cluster` (after the ones before it). NOT_FOUND for an unknown cluster.
  absl::Status AddMember(const std::string& cluster, const StoredMember& member);

  // Records a report of `epoch`, which must be the cluster's current epoch
  // (FAILED_PRECONDITION otherwise).
  absl::Status AddReport(const std::string& cluster, int64_t epoch,
                         const v1::ReportGroupStatusRequest& report);

  // Sets a rendezvous key of `epoch`, the cluster's current epoch.
  absl::Status PutRendezvousKey(const std::string& cluster, int64_t epoch, const std::string& key,
                                const std::string& value);

  // Removes a rendezvous key of `epoch`, the cluster's current epoch (NOT_FOUND for an unknown
  // cluster, FAILED_PRECONDITION for another epoch, as PutRendezvousKey). Removing a key that
  // is not there is OK: the caller decided from its own view, and the result is the same.
  absl::Status DeleteRendezvousKey(const std::string& cluster, int64_t epoch,
                                   const std::string& key);
};

}  // namespace splitd::store

#endif  // SPLITD_DAEMON_STORE_STATE_STORE_H_
