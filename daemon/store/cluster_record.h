#ifndef SPLITD_DAEMON_STORE_CLUSTER_RECORD_H_
#define SPLITD_DAEMON_STORE_CLUSTER_RECORD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "splitd/v1/topology.pb.h"

namespace splitd::store {

// What the daemon keeps about one cluster; everything else (the plan) is derived from it.
struct ClusterRecord {
  v1::Topology topology;  // normalized; topology.cluster() is the key
  int64_t epoch = 0;      // >= 1
  absl::Time create_time;
  absl::Time update_time;
  // The epoch's plan is built from `plan_topology` when it is set (has a cluster name): the
  // topology with dims resized by failure handling or Reconfigure.
  v1::Topology plan_topology;
  std::vector<std::string> assignment;  // member ids by rank, once assigned
  std::vector<std::string> excluded;    // member ids excluded for good
  std::string reason;                   // why the epoch was started
  int64_t shrinks_epoch = 0;            // the epoch this one only removes ranks from
  std::vector<int64_t> previous_ranks;  // each rank's rank in `shrinks_epoch`
  std::string join_token_sha256;        // hex SHA-256 of the join token; empty: none

  const v1::Topology& PlanTopology() const {
    return plan_topology.cluster().empty() ? topology : plan_topology;
  }
};

}  // namespace splitd::store

#endif  // SPLITD_DAEMON_STORE_CLUSTER_RECORD_H_
