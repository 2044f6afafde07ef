#include "daemon/control_service.h"

#include <optional>
#include <utility>
#include <vector>

#include "common/status_macros.h"
#include "daemon/stream_reactor.h"

namespace splitd::daemon {
namespace {

// One WatchEvents stream: sends the retained events after the requested sequence, then each new
// one as the EventLog wakes it.
class EventStream final : public StreamReactor<v1::Event> {
 public:
  EventStream(ServiceCall call, EventLog* log, std::string cluster, uint64_t after)
      : StreamReactor(call, "event stream write failed"),
        log_(log),
        cluster_(std::move(cluster)),
        sent_(after) {}

 private:
  void Opening() override {
    subscription_ = log_->Subscribe([this] {
      Ref();
      Wake();
      Unref();
    });
  }

  // Unsubscribe returns once no wake-up runs, so none reaches a deleted stream.
  void Closed() override {
    if (subscription_ != 0) log_->Unsubscribe(subscription_);
  }

  absl::StatusOr<std::optional<v1::Event>> Next() override {
    std::optional<v1::Event> next = log_->Next(sent_, cluster_);
    if (next.has_value()) sent_ = next->sequence();
    return next;
  }

  EventLog* const log_;
  const std::string cluster_;
  uint64_t sent_;              // touched by Next only
  uint64_t subscription_ = 0;  // set by Opening, read by Closed
};

}  // namespace

absl::Status ControlService::Authorize(const ServiceCall& call, bool dry_run) const {
  Authorizer::Call subject = call.ToAuthorize();
  subject.dry_run = dry_run;
  return authorizer_->Authorize(subject);
}

grpc::ServerUnaryReactor* ControlService::ApplyTopology(grpc::CallbackServerContext* context,
                                                        const v1::ApplyTopologyRequest* request,
                                                        v1::ApplyTopologyResponse* response) {
  const ServiceCall call = Call(context, "ApplyTopology");
  if (absl::Status allowed = Authorize(call); !allowed.ok()) return call.Finish(allowed);
  if (!request->has_topology()) {
    return call.Finish(absl::InvalidArgumentError("topology is required"));
  }
  Coordinator::JoinToken join;
  join.token = request->join_token();
  join.required = authorizer_->JoinTokenRequired();
  absl::StatusOr<Coordinator::ApplyResult> result =
      coordinator_->ApplyTopology(request->topology(), join);
  if (result.ok()) {
    *response->mutable_cluster() = std::move(result->cluster);
    response->set_created(result->created);
    response->set_changed(result->changed);
  }
  return call.Finish(result.status());
}

grpc::ServerUnaryReactor* ControlService::GetCluster(grpc::CallbackServerContext* context,
                                                     const v1::GetClusterRequest* request,
                                                     v1::GetClusterResponse* response) {
  const ServiceCall call = Call(context, "GetCluster");
  if (absl::Status allowed = Authorize(call); !allowed.ok()) return call.Finish(allowed);
  absl::StatusOr<v1::Cluster> cluster = coordinator_->GetCluster(request->name());
  if (cluster.ok()) *response->mutable_cluster() = *std::move(cluster);
  return call.Finish(cluster.status());
}

grpc::ServerUnaryReactor* ControlService::ListClusters(grpc::CallbackServerContext* context,
                                                       const v1::ListClustersRequest*,
                                                       v1::ListClustersResponse* response) {
  const ServiceCall call = Call(context, "ListClusters");
  if (absl::Status allowed = Authorize(call); !allowed.ok()) return call.Finish(allowed);
  absl::StatusOr<std::vector<v1::Cluster>> clusters = coordinator_->ListClusters();
  if (clusters.ok()) {
    for (v1::Cluster& cluster : *clusters) *response->add_clusters() = std::move(cluster);
  }
  return call.Finish(clusters.status());
}

grpc::ServerUnaryReactor* ControlService::DeleteCluster(grpc::CallbackServerContext* context,
                                                        const v1::DeleteClusterRequest* request,
                                                        v1::DeleteClusterResponse* response) {
  const ServiceCall call = Call(context, "DeleteCluster");
  if (absl::Status allowed = Authorize(call); !allowed.ok()) return call.Finish(allowed);
  absl::StatusOr<int64_t> epoch = coordinator_->DeleteCluster(request->name());
  if (epoch.ok()) response->set_last_epoch(*epoch);
  return call.Finish(epoch.status());
}

grpc::ServerUnaryReactor* ControlService::GetPlan(grpc::CallbackServerContext* context,
                                                  const v1::GetPlanRequest* request,
                                                  v1::GetPlanResponse* response) {
  const ServiceCall call = Call(context, "GetPlan");
  if (absl::Status allowed = Authorize(call); !allowed.ok()) return call.Finish(allowed);
  plan::PlanFilter filter;
  filter.group = request->group();
  if (request->has_rank()) filter.rank = request->rank();
  absl::StatusOr<v1::Plan> plan = coordinator_->GetPlan(request->cluster(), filter);
  if (plan.ok()) *response->mutable_plan() = *std::move(plan);
  return call.Finish(plan.status());
}

absl::StatusOr<v1::ClusterStatus> ControlService::StatusWithWaits(
    const std::string& cluster) const {
  if (spaces_ == nullptr) return coordinator_->GetStatus(cluster);
  ASSIGN_OR_RETURN(const int64_t epoch, coordinator_->CurrentEpoch(cluster));
  // Read apart from the coordinator's lock: the spaces call into the coordinator to persist.
  const core::HangAttribution::WaitingKeys waiting = spaces_->WaitingKeys(cluster, epoch);
  ASSIGN_OR_RETURN(v1::ClusterStatus status, coordinator_->GetStatus(cluster, waiting));
  // A new epoch began in between: those waits were in the old one's space.
  if (status.epoch() != epoch) return coordinator_->GetStatus(cluster);
  return status;
}

grpc::ServerUnaryReactor* ControlService::GetStatus(grpc::CallbackServerContext* context,
                                                    const v1::GetStatusRequest* request,
                                                    v1::GetStatusResponse* response) {
  const ServiceCall call = Call(context, "GetStatus");
  if (absl::Status allowed = Authorize(call); !allowed.ok()) return call.Finish(allowed);
  absl::StatusOr<v1::ClusterStatus> status = StatusWithWaits(request->cluster());
  if (status.ok()) *response->mutable_status() = *std::move(status);
  return call.Finish(status.status());
}

grpc::ServerUnaryReactor* ControlService::Reconfigure(grpc::CallbackServerContext* context,
                                                      const v1::ReconfigureRequest* request,
                                                      v1::ReconfigureResponse* response) {
  const ServiceCall call = Call(context, "Reconfigure");
  if (absl::Status allowed = Authorize(call, request->dry_run()); !allowed.ok()) {
    return call.Finish(allowed);
  }
  return call.Reply(coordinator_->Reconfigure(*request), response);
}

grpc::ServerWriteReactor<v1::Event>* ControlService::WatchEvents(
    grpc::CallbackServerContext* context, const v1::WatchEventsRequest* request) {
  const ServiceCall call = Call(context, "WatchEvents");
  EventLog* log = coordinator_->events();
  const uint64_t after = request->only_new() ? log->LastSequence() : request->after_sequence();
  auto* stream = new EventStream(call, log, request->cluster(), after);
  if (absl::Status allowed = Authorize(call); !allowed.ok()) {
    stream->Refuse(allowed);
    return stream;
  }
  stream->Open(&streams_, /*group=*/"");
  return stream;
}

void ControlService::Shutdown() { streams_.Shutdown(); }

}  // namespace splitd::daemon
