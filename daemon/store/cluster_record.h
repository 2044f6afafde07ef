#ifndef SPLITD_DAEMON_STORE_CLUSTER_RECORD_H_
#define SPLITD_DAEMON_STORE_CLUSTER_RECORD_H_

#include <cstdint>

#include "absl/time/time.h"
#include "splitd/v1/topology.pb.h"

namespace splitd::store {

// What the daemon keeps about one cluster; everything else (the plan) is derived from it.
struct ClusterRecord {
  v1::Topology topology;  // normalized; topology.cluster() is the key
  int64_t epoch = 0;      // >= 1
  absl::Time create_time;
  absl::Time update_time;
};

}  // namespace splitd::store

#endif  // SPLITD_DAEMON_STORE_CLUSTER_RECORD_H_
