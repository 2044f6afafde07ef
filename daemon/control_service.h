#ifndef SPLITD_DAEMON_CONTROL_SERVICE_H_
#define SPLITD_DAEMON_CONTROL_SERVICE_H_

#include <set>
#include <string>

#include "absl/synchronization/mutex.h"
#include "daemon/authorizer.h"
#include "daemon/coordinator.h"
#include "daemon/rendezvous_spaces.h"
#include "daemon/rpc_metrics.h"
#include "splitd/v1/control_service.grpc.pb.h"

namespace splitd::daemon {

// gRPC adapter for splitd.v1.ControlService on the callback API: checks the request's shape,
// calls the Coordinator and converts its status. WatchEvents streams follow the Coordinator's
// EventLog. With an enabled Authorizer every call needs a control token: an admin token for
// everything, an observer token for reads (and Reconfigure's dry runs). Thread-safe.
class ControlService final : public v1::ControlService::CallbackService {
 public:
  // `coordinator`, `authorizer` (null: every call allowed), `rpc_metrics` (null: calls are
  // not counted) and `spaces` (null: GetStatus names no rendezvous waits) must outlive the
  // service.
  explicit ControlService(Coordinator* coordinator, const Authorizer* authorizer = nullptr,
                          RpcMetrics* rpc_metrics = nullptr,
                          const RendezvousSpaces* spaces = nullptr)
      : coordinator_(coordinator),
        authorizer_(authorizer),
        rpc_metrics_(rpc_metrics),
        spaces_(spaces) {}
  ~ControlService() override;

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

  class EventWatcher;  // one WatchEvents stream

 private:
  friend class EventWatcher;
  void Forget(EventWatcher* watcher);
  // OK when the call's token may make `method`; UNAUTHENTICATED without a valid token,
  // PERMISSION_DENIED for a valid one of another scope.
  absl::Status Authorize(const grpc::CallbackServerContext& context, const char* method,
                         bool changes_state) const;

  // The cluster's status with who holds it back, from the waits in its epoch's space.
  absl::StatusOr<v1::ClusterStatus> StatusWithWaits(const std::string& cluster) const;

  RpcTimer Timer(const char* method) const {
    return RpcTimer(rpc_metrics_, "splitd.v1.ControlService", method);
  }

  Coordinator* const coordinator_;
  const Authorizer* const authorizer_;
  RpcMetrics* const rpc_metrics_;
  const RendezvousSpaces* const spaces_;
  absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::set<EventWatcher*> watchers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_CONTROL_SERVICE_H_
