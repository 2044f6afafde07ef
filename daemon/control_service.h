#ifndef SPLITD_DAEMON_CONTROL_SERVICE_H_
#define SPLITD_DAEMON_CONTROL_SERVICE_H_

#include <string>

#include "daemon/authorizer.h"
#include "daemon/coordinator.h"
#include "daemon/rendezvous_spaces.h"
#include "daemon/rpc_metrics.h"
#include "daemon/service_call.h"
#include "daemon/stream_registry.h"
#include "splitd/v1/control_service.grpc.pb.h"

namespace splitd::daemon {

// gRPC adapter for splitd.v1.ControlService on the callback API: puts each call to the
// Authorizer, checks the request's shape, calls the Coordinator and converts its status.
// WatchEvents streams follow the Coordinator's EventLog. Thread-safe.
class ControlService final : public v1::ControlService::CallbackService {
 public:
  // `coordinator` and `authorizer` must outlive the service; so must `rpc_metrics` (null: calls
  // are not counted) and `spaces` (null: GetStatus names no rendezvous waits).
  ControlService(Coordinator* coordinator, const Authorizer* authorizer,
                 RpcMetrics* rpc_metrics = nullptr, const RendezvousSpaces* spaces = nullptr)
      : coordinator_(coordinator),
        authorizer_(authorizer),
        rpc_metrics_(rpc_metrics),
        spaces_(spaces) {}

  grpc::ServerUnaryReactor* ApplyTopology(grpc::CallbackServerContext* context,
                                          const v1::ApplyTopologyRequest* request,
                                          v1::ApplyTopologyResponse* response) override;
  grpc::ServerUnaryReactor* GetCluster(grpc::CallbackServerContext* context,
                                       const v1::GetClusterRequest* request,
                                       v1::GetClusterResponse* response) override;
  grpc::ServerUnaryReactor* ListClusters(grpc::CallbackServerContext* context,
                                         const v1::ListClustersRequest* request,
                                         v1::ListClustersResponse* response) override;
  grpc::ServerUnaryReactor* DeleteCluster(grpc::CallbackServerContext* context,
                                          const v1::DeleteClusterRequest* request,
                                          v1::DeleteClusterResponse* response) override;
  grpc::ServerUnaryReactor* GetPlan(grpc::CallbackServerContext* context,
                                    const v1::GetPlanRequest* request,
                                    v1::GetPlanResponse* response) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const v1::GetStatusRequest* request,
                                      v1::GetStatusResponse* response) override;
  grpc::ServerUnaryReactor* Reconfigure(grpc::CallbackServerContext* context,
                                        const v1::ReconfigureRequest* request,
                                        v1::ReconfigureResponse* response) override;
  grpc::ServerWriteReactor<v1::Event>* WatchEvents(grpc::CallbackServerContext* context,
                                                   const v1::WatchEventsRequest* request) override;

  // Ends every open event stream with UNAVAILABLE; new ones are refused from now on.
  void Shutdown();

 private:
  ServiceCall Call(grpc::CallbackServerContext* context, const char* method) const {
    return ServiceCall(context, rpc_metrics_, "splitd.v1.ControlService", method);
  }
  // The Authorizer's answer for `call`; `dry_run` marks a Reconfigure that only previews.
  absl::Status Authorize(const ServiceCall& call, bool dry_run = false) const;

  // The cluster's status with who holds it back, from the waits in its epoch's space.
  absl::StatusOr<v1::ClusterStatus> StatusWithWaits(const std::string& cluster) const;

  Coordinator* const coordinator_;
  const Authorizer* const authorizer_;
  RpcMetrics* const rpc_metrics_;
  const RendezvousSpaces* const spaces_;
  StreamRegistry streams_;  // WatchEvents streams, in one group
};

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_CONTROL_SERVICE_H_
