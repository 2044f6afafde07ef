#ifndef SPLITD_DAEMON_ETCD_LEADER_ELECTION_H_
#define SPLITD_DAEMON_ETCD_LEADER_ELECTION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "daemon/etcd/etcd_client.h"

namespace splitd::etcd {

struct ElectionOptions {
  // Candidates' keys are prefix + "leader/<lease id in hex>".
  std::string prefix = "/splitd/";
  // What a candidate's key holds: the HOST:PORT clients reach it on.
  std::string advertise;
  // TTL of the lease each candidate's key is bound to.
  absl::Duration ttl = absl::Seconds(3);
};

// What a won election gives the leader.
struct Leadership {
  std::string key;   // its leader key
  int64_t term = 0;  // the key's create revision: the fencing token of every write
};

// One replica's part in electing the daemon's leader through etcd: the candidate's key is bound
// to a lease this class keeps alive itself (etcd does not while a candidate waits), created only
// if absent; the candidate whose key has the smallest create revision leads, and each other one
// waits for the key just before its own to go (the predecessor wait), then checks again.
//
// The lease is renewed every ttl/3. Leadership is valid until the moment etcd could let the
// lease expire, counted from when the renewal that granted it was sent; once that moment passes
// without a newer renewal (etcd unreachable, the process stopped), or etcd says the lease is
// gone, the replica has lost: Valid() turns false at once and `on_lost` runs once, on the
// keepalive thread.
//
// Thread-safe. The destructor revokes the lease (so a successor need not wait out the TTL).
class LeaderElection {
 public:
  LeaderElection(EtcdClient* client, ElectionOptions options,
                 std::function<void(const absl::Status&)> on_lost);
  ~LeaderElection();
  LeaderElection(const LeaderElection&) = delete;
  LeaderElection& operator=(const LeaderElection&) = delete;

  // Blocks until this replica leads, or `stop` is notified (CANCELLED), or its lease was lost
  // while it waited (UNAVAILABLE: make a new LeaderElection to try again).
  absl::StatusOr<Leadership> Campaign(absl::Notification* stop);

  // While this replica leads: whether its lease still holds now.
  bool Valid() const;

  // The HOST:PORT the leading replica advertises, as last read ("" when none or unknown).
  std::string LeaderAddress() const;

  // Gives leadership up now: revokes the lease (its key goes with it).
  void Resign();

 private:
  // Renews the lease until stopped or lost.
  void KeepAlive();
  // One renewal over a keepalive stream of its own, bounded by the lease's validity.
  void Renew();
  void Lose(const absl::Status& why);
  // Reads the leader key (smallest create revision) and the key just before `revision`; sets
  // *predecessor to it ("" when none).
  absl::Status ReadCandidates(int64_t revision, std::string* predecessor, int64_t* read_revision);
  // Waits until `key` is deleted, `stop` is notified, the lease is lost, or about a second passed.
  void WaitForDeletion(const std::string& key, int64_t after_revision, absl::Notification* stop);

  EtcdClient* const client_;
  const ElectionOptions options_;
  const std::function<void(const absl::Status&)> on_lost_;
  int64_t lease_ = 0;
  // steady_clock nanoseconds until which the lease surely holds.
  std::atomic<int64_t> valid_until_nanos_{0};
  std::atomic<bool> lost_{false};
  absl::Notification stop_keepalive_;
  std::thread keepalive_;
  std::atomic<bool> revoked_{false};
  mutable absl::Mutex mu_;
  std::string leader_address_ ABSL_GUARDED_BY(mu_);
};

}  // namespace splitd::etcd

#endif  // SPLITD_DAEMON_ETCD_LEADER_ELECTION_H_
