#ifndef SPLITD_TESTS_TESTING_ETCD_CLUSTER_H_
#define SPLITD_TESTS_TESTING_ETCD_CLUSTER_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/testing/subprocess.h"

namespace splitd::testing {

// Real etcd members (Debian's /usr/bin/etcd) on free loopback ports, each with a data directory
// of its own under a temporary directory, started with --unsafe-no-fsync. Members are killed
// with SIGKILL on destruction. Not thread-safe.
class EtcdCluster {
 public:
  // Starts `members` members and waits until the cluster has a leader that takes writes.
  static absl::StatusOr<std::unique_ptr<EtcdCluster>> Start(int members = 1);
  ~EtcdCluster();

  int size() const { return static_cast<int>(members_.size()); }
  // host:port of member i's client URL, and of all members.
  std::string endpoint(int i) const;
  std::vector<std::string> endpoints() const;
  // "a,b,c": the form of --etcd_endpoints.
  std::string endpoints_flag() const;

  // SIGKILL of member i; Restart starts it again on its data directory.
  void Kill(int i);
  absl::Status Restart(int i);
  void Signal(int i, int signal_number);
  bool running(int i) const { return members_[i].process.has_value(); }
  // The member that leads now (by asking each running member), or NOT_FOUND.
  absl::StatusOr<int> Leader() const;
  // Waits until some member serves a linearizable read.
  absl::Status WaitReady(absl::Duration timeout) const;

 private:
  struct Member {
    std::string name;
    int client_port = 0;
    int peer_port = 0;
    std::string data_dir;
    std::optional<Subprocess> process;
  };
  EtcdCluster() = default;
  absl::Status StartMember(int i, bool fresh);

  std::string initial_cluster_;
  std::string token_;
  std::vector<Member> members_;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreeLoopbackPort();

}  // namespace splitd::testing

#endif  // SPLITD_TESTS_TESTING_ETCD_CLUSTER_H_
