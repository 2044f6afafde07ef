#ifndef SPLITD_DAEMON_CONTROL_SERVICE_H_
#define SPLITD_DAEMON_CONTROL_SERVICE_H_

#include "daemon/coordinator.h"
#include "splitd/v1/control_service.grpc.pb.h"

namespace splitd::daemon {

// gRPC adapter for splitd.v1.ControlService on the callback API: checks the request's shape,
// calls the Coordinator and converts its status. Holds no state of its own; thread-safe.
class ControlService final : public v1::ControlService::CallbackService {
 public:
  // `coordinator` must outlive the service.
  explicit ControlService(Coordinator* coordinator) : coordinator_(coordinator) {}

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

 private:
  Coordinator* const coordinator_;
};

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_CONTROL_SERVICE_H_
