#ifndef SPLITD_DAEMON_ETCD_ETCD_CLIENT_H_
#define SPLITD_DAEMON_ETCD_ETCD_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"

namespace splitd::etcd {

// How the daemon reaches etcd (main.cc fills it from the --etcd_* flags).
struct EtcdOptions {
  // host:port of each etcd member's client URL; at least one.
  std::vector<std::string> endpoints;
  // TLS to etcd: a CA bundle its certificates chain to, and a client certificate and key for
  // etcd's --client-cert-auth. All empty: plaintext.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // etcd's own authentication (etcdctl user add): empty user means none.
  std::string user;
  std::string password;
  // Deadline of one call that is not a watch or a lease keepalive stream.
  absl::Duration call_timeout = absl::Seconds(5);
};

// The keys from a range read of a whole prefix at one revision.
struct PrefixRead {
  int64_t revision = 0;
  std::vector<mvccpb::KeyValue> kvs;  // sorted by key
};

// The key just after every key that starts with `prefix` (etcd's range_end for a prefix).
std::string PrefixEnd(const std::string& prefix);

// A client of one etcd cluster over its v3 gRPC API: one channel per endpoint, calls go to the
// endpoint that answered last, and a call that fails UNAVAILABLE moves the next call on to the
// next endpoint. Reads are retried on the other endpoints at once; writes never are (a write that
// was sent may have applied: the caller reads back). Every call carries `hasleader: true`, so a
// member cut off from its cluster's leader fails fast instead of going quiet, and the token of
// etcd's authentication when a user is set (renewed when etcd no longer takes it).
// Thread-safe.
class EtcdClient {
 public:
  // INVALID_ARGUMENT naming the flag for bad options or unreadable files; connects lazily.
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Create(const EtcdOptions& options);

  const EtcdOptions& options() const { return options_; }

  // A range read; retried on the other endpoints.
  absl::StatusOr<etcdserverpb::RangeResponse> Range(const etcdserverpb::RangeRequest& request);
  // Every key under `prefix`, read in pages of `page_keys` at the revision of the first page
  // (one consistent view).
  absl::StatusOr<PrefixRead> ReadPrefix(const std::string& prefix, int64_t page_keys = 256);
  // A transaction; not retried. An error other than FAILED_PRECONDITION-like refusals leaves
  // its outcome unknown.
  absl::StatusOr<etcdserverpb::TxnResponse> Txn(const etcdserverpb::TxnRequest& request);
  absl::StatusOr<etcdserverpb::CompactionResponse> Compact(int64_t revision);
  absl::StatusOr<etcdserverpb::LeaseGrantResponse> LeaseGrant(int64_t ttl_seconds);
  absl::Status LeaseRevoke(int64_t lease);

  // For streams (lease keepalive, watch): a context with this client's metadata and no
  // deadline, and the stubs of the endpoint in use.
  void PrepareStream(grpc::ClientContext* context);
  etcdserverpb::Lease::Stub* lease_stub();
  etcdserverpb::Watch::Stub* watch_stub();
  // A stream on the endpoint in use failed UNAVAILABLE: move on to the next.
  void EndpointFailed();

 private:
  struct Endpoint {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<etcdserverpb::KV::Stub> kv;
    std::unique_ptr<etcdserverpb::Lease::Stub> lease;
    std::unique_ptr<etcdserverpb::Watch::Stub> watch;
    std::unique_ptr<etcdserverpb::Auth::Stub> auth;
  };

  explicit EtcdClient(EtcdOptions options) : options_(std::move(options)) {}

  void Prepare(grpc::ClientContext* context, bool deadline);
  Endpoint& Current();
  // Calls `call` on the endpoint in use, authenticating first when needed; on UNAVAILABLE moves
  // on and, when `retry`, tries every other endpoint once.
  template <typename Call>
  absl::Status Invoke(bool retry, Call call);
  absl::Status Authenticate(Endpoint& endpoint);

  const EtcdOptions options_;
  std::vector<Endpoint> endpoints_;
  std::atomic<size_t> current_{0};
  absl::Mutex token_mu_;
  std::string token_ ABSL_GUARDED_BY(token_mu_);
};

}  // namespace splitd::etcd

#endif  // SPLITD_DAEMON_ETCD_ETCD_CLIENT_H_
