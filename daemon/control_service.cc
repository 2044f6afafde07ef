#include "daemon/control_service.h"

#include <utility>

#include "common/grpc_status.h"
#include "spdlog/spdlog.h"

namespace splitd::daemon {
namespace {

// Finishes a unary call with `status`, logging refusals at debug level for operators.
grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context, const char* method,
                                 const absl::Status& status) {
  if (!status.ok()) {
    spdlog::debug("ControlService.{} from {}: {}", method, context->peer(), status.ToString());
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* ControlService::ApplyTopology(grpc::CallbackServerContext* context,
                                                        const v1::ApplyTopologyRequest* request,
                                                        v1::ApplyTopologyResponse* response) {
  if (!request->has_topology()) {
    return Finish(context, "ApplyTopology", absl::InvalidArgumentError("topology is required"));
  }
  absl::StatusOr<Coordinator::ApplyResult> result =
      coordinator_->ApplyTopology(request->topology());
  if (result.ok()) {
    *response->mutable_cluster() = std::move(result->cluster);
    response->set_created(result->created);
    response->set_changed(result->changed);
  }
  return Finish(context, "ApplyTopology", result.status());
}

grpc::ServerUnaryReactor* ControlService::GetCluster(grpc::CallbackServerContext* context,
                                                     const v1::GetClusterRequest* request,
                                                     v1::GetClusterResponse* response) {
  absl::StatusOr<v1::Cluster> cluster = coordinator_->GetCluster(request->name());
  if (cluster.ok()) *response->mutable_cluster() = *std::move(cluster);
  return Finish(context, "GetCluster", cluster.status());
}

grpc::ServerUnaryReactor* ControlService::ListClusters(grpc::CallbackServerContext* context,
                                                       const v1::ListClustersRequest*,
                                                       v1::ListClustersResponse* response) {
  absl::StatusOr<std::vector<v1::Cluster>> clusters = coordinator_->ListClusters();
  if (clusters.ok()) {
    for (v1::Cluster& cluster : *clusters) *response->add_clusters() = std::move(cluster);
  }
  return Finish(context, "ListClusters", clusters.status());
}

grpc::ServerUnaryReactor* ControlService::DeleteCluster(grpc::CallbackServerContext* context,
                                                        const v1::DeleteClusterRequest* request,
                                                        v1::DeleteClusterResponse* response) {
  absl::StatusOr<int64_t> epoch = coordinator_->DeleteCluster(request->name());
  if (epoch.ok()) response->set_last_epoch(*epoch);
  return Finish(context, "DeleteCluster", epoch.status());
}

grpc::ServerUnaryReactor* ControlService::GetPlan(grpc::CallbackServerContext* context,
                                                  const v1::GetPlanRequest* request,
                                                  v1::GetPlanResponse* response) {
  core::PlanFilter filter;
  filter.group = request->group();
  if (request->has_rank()) filter.rank = request->rank();
  absl::StatusOr<v1::Plan> plan = coordinator_->GetPlan(request->cluster(), filter);
  if (plan.ok()) *response->mutable_plan() = *std::move(plan);
  return Finish(context, "GetPlan", plan.status());
}

grpc::ServerUnaryReactor* ControlService::GetStatus(grpc::CallbackServerContext* context,
                                                    const v1::GetStatusRequest* request,
                                                    v1::GetStatusResponse* response) {
  absl::StatusOr<v1::ClusterStatus> status = coordinator_->GetStatus(request->cluster());
  if (status.ok()) *response->mutable_status() = *std::move(status);
  return Finish(context, "GetStatus", status.status());
}

}  // namespace splitd::daemon
