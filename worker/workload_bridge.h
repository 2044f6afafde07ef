#ifndef SPLITD_WORKER_WORKLOAD_BRIDGE_H_
#define SPLITD_WORKER_WORKLOAD_BRIDGE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "splitd/v1/agent_service.grpc.pb.h"
#include "worker/workload_api.h"

namespace splitd::worker {

// What the agent hands its workload at the end of an epoch's work: the plan file's document.
struct HandOver {
  int64_t epoch = 0;
  int64_t rank = -1;
  std::string state;  // "READY", "FAILED", "SPARE", "EXCLUDED"
  std::string fingerprint;
  std::string document;  // JSON, with the layout
};

// The agent's side of the workload endpoint: keeps the plan handed over last (long-polls wait
// for a newer one) and runs the workload's store operations and reports against the daemon with
// the agent's own session, fenced by the handed-over epoch. The workload's keys live under "w/"
// in the (cluster, epoch) rendezvous space, apart from the agents' own bootstrap keys.
//
// Threading: thread-safe; Publish and Shutdown come from the agent's threads, everything else
// from the endpoint's connection threads.
class WorkloadBridge : public WorkloadBackend {
 public:
  // The agent's session right now; nullopt while it has none (registering again).
  using CredentialsFn = std::function<std::optional<v1::MemberCredentials>()>;
  // The agent's own phase name and member id, for the status document.
  using AgentStatusFn = std::function<std::pair<std::string, std::string>()>;

  WorkloadBridge(std::string cluster, absl::Duration rpc_timeout,
                 v1::AgentService::StubInterface* stub, CredentialsFn credentials,
                 AgentStatusFn agent_status);

  static constexpr char kKeyPrefix[] = "w/";

  // Makes `hand_over` the plan the workload sees; wakes every long-poll.
  void Publish(HandOver hand_over);
  // Ends every wait in progress (CANCELLED) and refuses new ones: the agent is stopping.
  void Shutdown();

  absl::StatusOr<std::string> PlanDocument(int64_t after, absl::Time deadline,
                                           const ClientGone& gone) override;
  std::string StatusDocument() override;
  absl::StatusOr<StoreResult> Store(const StoreOp& op, const ClientGone& gone) override;
  absl::StatusOr<v1::Phase> Report(const v1::ReportGroupStatusRequest& report) override;

 private:
  // The credentials and hand-over a request of `epoch` runs under: FAILED_PRECONDITION before
  // any hand-over or for a spare, ABORTED for another epoch, UNAVAILABLE without a session.
  absl::StatusOr<std::pair<v1::MemberCredentials, HandOver>> Fence(int64_t epoch) const;
  // KvGet for get and wait: asynchronous, so that a client that goes away cancels it.
  absl::StatusOr<StoreResult> WaitForKeys(const StoreOp& op, const v1::MemberCredentials& member,
                                          const ClientGone& gone);
  absl::StatusOr<StoreResult> Call(const StoreOp& op, const v1::MemberCredentials& member);
  bool cancelled(const ClientGone& gone) const;

  const std::string cluster_;
  const absl::Duration rpc_timeout_;
  v1::AgentService::StubInterface* const stub_;
  const CredentialsFn credentials_;
  const AgentStatusFn agent_status_;

  mutable absl::Mutex mu_;
  std::optional<HandOver> hand_over_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_WORKLOAD_BRIDGE_H_
