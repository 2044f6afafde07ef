#ifndef SPLITD_WORKER_GRPC_RENDEZVOUS_CLIENT_H_
#define SPLITD_WORKER_GRPC_RENDEZVOUS_CLIENT_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/client_context.h"
#include "splitd/v1/agent_service.grpc.pb.h"
#include "worker/rendezvous_client.h"

namespace splitd::worker {

// RendezvousClient over AgentService.KvSet/KvGet/KvAdd: the key-value space of one
// (cluster, epoch), used with one member's credentials. Get waits on the daemon side and carries
// its timeout as the call's deadline; Set and Add are bounded by `call_timeout`. Every call waits
// for the channel to become ready (within its deadline), so a daemon that restarts mid-bootstrap
// costs time, not the epoch. gRPC failures come back as the same canonical codes.
//
// Thread-safe. Cancel() (from any thread) aborts the calls in flight and makes every later call
// fail with CANCELLED: the agent uses it to unblock a bootstrap when it stops or when a newer
// epoch makes this one pointless.
class GrpcRendezvousClient : public RendezvousClient {
 public:
  // `stub` is not owned and must outlive this client.
  GrpcRendezvousClient(v1::AgentService::StubInterface* stub, v1::MemberCredentials credentials,
                       int64_t epoch, absl::Duration call_timeout = absl::Seconds(30));

  absl::Status Set(const std::string& key, const std::string& value) override;
  absl::StatusOr<std::vector<std::string>> Get(const std::vector<std::string>& keys,
                                               absl::Duration timeout) override;
  absl::StatusOr<int64_t> Add(const std::string& key, int64_t delta) override;

  // Aborts the calls in flight; later calls fail with CANCELLED. Idempotent.
  void Cancel();
  bool Cancelled() const override;

  int64_t epoch() const { return epoch_; }

 private:
  // Whether a failed call is worth sending again (the connection to the daemon broke).
  static bool Retryable(const absl::Status& status);
  // Sleeps `pause` unless that passes `deadline` or the client was cancelled; false then.
  bool PauseBefore(absl::Time deadline, absl::Duration pause);
  // Prepares `context` (deadline, wait-for-ready) and tracks it so Cancel() can reach it;
  // CANCELLED when already cancelled.
  absl::Status Begin(grpc::ClientContext* context, absl::Duration timeout);
  void End(grpc::ClientContext* context);

  v1::AgentService::StubInterface* const stub_;
  const v1::MemberCredentials credentials_;
  const int64_t epoch_;
  const absl::Duration call_timeout_;

  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::set<grpc::ClientContext*> in_flight_ ABSL_GUARDED_BY(mu_);
};

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_GRPC_RENDEZVOUS_CLIENT_H_
