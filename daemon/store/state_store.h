#ifndef SPLITD_DAEMON_STORE_STATE_STORE_H_
#define SPLITD_DAEMON_STORE_STATE_STORE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/store/cluster_record.h"
#include "splitd/v1/agent_service.pb.h"

namespace splitd::store {

// One agent as Register admitted it.
struct StoredMember {
  v1::MemberIdentity identity;
  v1::Capabilities capabilities;
  std::string session_token_sha256;  // lowercase hex SHA-256 of its session token
  absl::Time registered;
};

// Everything durable about one cluster: its topology and epoch, its members in registration
// order, and the reports and rendezvous keys of its current epoch, in the order they came.
struct ClusterState {
  ClusterRecord record;
  std::vector<StoredMember> members;
  std::vector<v1::ReportGroupStatusRequest> reports;
  std::map<std::string, std::string> rendezvous;
};

// Where the daemon's state lives. A write returns only once it is as durable as the
// implementation promises; callers publish a change only after the write succeeded, so a
// refused write changes nothing. Implementations are thread-safe and pass
// state_store_conformance.h.
class StateStore {
 public:
  virtual ~StateStore() = default;

  // Inserts or replaces the cluster keyed by record.topology.cluster(). A new epoch drops the
  // reports and rendezvous keys of older ones; members stay. UNAVAILABLE or RESOURCE_EXHAUSTED
  // when the store cannot take writes.
  virtual absl::Status PutCluster(const ClusterRecord& record) = 0;

  // Removes a cluster with everything about it. NOT_FOUND when there is none of that name.
  virtual absl::Status DeleteCluster(const std::string& name) = 0;

  // Admits a member of `cluster` (after the ones before it). NOT_FOUND for an unknown cluster.
  virtual absl::Status AddMember(const std::string& cluster, const StoredMember& member) = 0;

  // Records a report of `epoch`, which must be the cluster's current epoch
  // (FAILED_PRECONDITION otherwise).
  virtual absl::Status AddReport(const std::string& cluster, int64_t epoch,
                                 const v1::ReportGroupStatusRequest& report) = 0;

  // Sets a rendezvous key of `epoch`, the cluster's current epoch.
  virtual absl::Status PutRendezvousKey(const std::string& cluster, int64_t epoch,
                                        const std::string& key, const std::string& value) = 0;

  // Removes a rendezvous key of `epoch`, the cluster's current epoch (NOT_FOUND for an unknown
  // cluster, FAILED_PRECONDITION for another epoch, as PutRendezvousKey). Removing a key that
  // is not there is OK: the caller decided from its own view, and the result is the same.
  virtual absl::Status DeleteRendezvousKey(const std::string& cluster, int64_t epoch,
                                           const std::string& key) = 0;

  // Every cluster, sorted by name.
  virtual absl::StatusOr<std::vector<ClusterState>> LoadClusters() const = 0;
};

}  // namespace splitd::store

#endif  // SPLITD_DAEMON_STORE_STATE_STORE_H_
