#ifndef SPLITD_DAEMON_AGENT_SERVICE_H_
#define SPLITD_DAEMON_AGENT_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "daemon/authorizer.h"
#include "daemon/coordinator.h"
#include "daemon/rendezvous_spaces.h"
#include "daemon/rpc_metrics.h"
#include "daemon/service_call.h"
#include "daemon/stream_registry.h"
#include "splitd/v1/agent_service.grpc.pb.h"

namespace splitd::daemon {

// gRPC adapter for splitd.v1.AgentService on the callback API. Each call is put to the
// Authorizer, then goes to the Coordinator, and the Kv* calls to the rendezvous space of (the
// member's cluster, the epoch) once the Coordinator allowed them; WatchPlan streams stay open
// and are pushed a plan whenever the Coordinator reports an event for their cluster; KvGet
// waits without holding a thread. WatchPlan is served raw (its messages as bytes): every
// stream of an epoch sends the same encoded plan (Coordinator::PlanForMember) followed by its
// own rank, without a copy or an encoding of the plan per stream.
//
// Threading: thread-safe. Must be told of every Coordinator event (OnClusterEvent) and shut
// down (Shutdown) before the server stops, so open streams end promptly.
class AgentService final
    : public v1::AgentService::WithRawCallbackMethod_WatchPlan<v1::AgentService::CallbackService> {
 public:
  // `coordinator`, `spaces` and `authorizer` must outlive the service; so must `rpc_metrics`
  // (null: calls are not counted).
  AgentService(Coordinator* coordinator, RendezvousSpaces* spaces, const Authorizer* authorizer,
               RpcMetrics* rpc_metrics = nullptr)
      : coordinator_(coordinator),
        spaces_(spaces),
        authorizer_(authorizer),
        rpc_metrics_(rpc_metrics) {}

  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* context,
                                     const v1::RegisterRequest* request,
                                     v1::RegisterResponse* response) override;
  // A WatchPlanRequest in, WatchPlanResponses out, as bytes.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchPlan(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* ReportGroupStatus(grpc::CallbackServerContext* context,
                                              const v1::ReportGroupStatusRequest* request,
                                              v1::ReportGroupStatusResponse* response) override;
  grpc::ServerUnaryReactor* KvSet(grpc::CallbackServerContext* context,
                                  const v1::KvSetRequest* request,
                                  v1::KvSetResponse* response) override;
  grpc::ServerUnaryReactor* KvGet(grpc::CallbackServerContext* context,
                                  const v1::KvGetRequest* request,
                                  v1::KvGetResponse* response) override;
  grpc::ServerUnaryReactor* KvAdd(grpc::CallbackServerContext* context,
                                  const v1::KvAddRequest* request,
                                  v1::KvAddResponse* response) override;
  grpc::ServerUnaryReactor* KvCompareSet(grpc::CallbackServerContext* context,
                                         const v1::KvCompareSetRequest* request,
                                         v1::KvCompareSetResponse* response) override;
  grpc::ServerUnaryReactor* KvCheck(grpc::CallbackServerContext* context,
                                    const v1::KvCheckRequest* request,
                                    v1::KvCheckResponse* response) override;
  grpc::ServerUnaryReactor* KvDelete(grpc::CallbackServerContext* context,
                                     const v1::KvDeleteRequest* request,
                                     v1::KvDeleteResponse* response) override;

  // Pushes new plans to the cluster's watchers and drops rendezvous keys of finished epochs.
  void OnClusterEvent(const ClusterEvent& event);

  // Ends every open stream with UNAVAILABLE; new streams are refused from now on.
  void Shutdown();

 private:
  ServiceCall Call(grpc::CallbackServerContext* context, const char* method) const {
    return ServiceCall(context, rpc_metrics_, "splitd.v1.AgentService", method);
  }
  // The Authorizer's answer for `call`; `cluster` is the cluster a Register joins.
  absl::Status Authorize(const ServiceCall& call, const std::string& cluster = "") const;
  // The Coordinator's answer for `member` in the rendezvous space of `epoch`, then `op`'s.
  template <typename Op>
  absl::Status InSpace(const v1::MemberCredentials& member, int64_t epoch, Op op) const;

  Coordinator* const coordinator_;
  RendezvousSpaces* const spaces_;
  const Authorizer* const authorizer_;
  RpcMetrics* const rpc_metrics_;
  std::atomic<uint64_t> next_waiter_id_{1};
  StreamRegistry streams_;  // WatchPlan streams, by cluster
};

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_AGENT_SERVICE_H_
