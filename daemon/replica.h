#ifndef SPLITD_DAEMON_REPLICA_H_
#define SPLITD_DAEMON_REPLICA_H_

#include <signal.h>

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/clock.h"
#include "daemon/etcd/etcd_client.h"
#include "daemon/splitd_server.h"

namespace splitd::daemon {

// One of several daemon replicas over etcd (--etcd_endpoints).
struct ReplicaConfig {
  etcd::EtcdOptions etcd;
  // Every key the replicas write lies under it (the state, the election).
  std::string prefix = "/splitd/";
  // HOST:PORT clients reach this replica on (published in its election key). Empty: the bound
  // listen address, unless its host is a wildcard (then an error).
  std::string advertise;
  // TTL of the election lease: how long a leader that stopped renewing can still be believed.
  absl::Duration ttl = absl::Seconds(3);
  // The process's own command line: a replica that loses its leadership starts itself again
  // (execv) as a follower with a clean state.
  std::vector<std::string> argv;
};

// Runs a replica until one of `stop_signals` arrives: serves as a follower (FollowerServer),
// campaigns (etcd::LeaderElection), and once elected loads the state from etcd with one read
// and serves as the daemon (SplitdServer) with `config`, its store in etcd, its answers carrying
// its term and every call refused once its lease is in doubt. A leader whose lease runs out or
// whose fenced write is refused stops serving at once and starts its process again. Returns the
// process's exit code.
int RunReplica(ServerConfig config, const ReplicaConfig& replica, const Clock* clock,
               const sigset_t& stop_signals);

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_REPLICA_H_
