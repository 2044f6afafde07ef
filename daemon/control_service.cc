#include "daemon/control_service.h"

#include <atomic>
#include <optional>
#include <utility>
#include <vector>

#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace splitd::daemon {
namespace {

// Finishes a unary call with `status`, logging refusals at debug level for operators.
grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context, const RpcTimer& call,
                                 const absl::Status& status) {
  if (!status.ok()) {
    spdlog::debug("ControlService.{} from {}: {}", call.method(), context->peer(),
                  status.ToString());
  }
  const grpc::Status sent = ToGrpcStatus(status);
  call.Record(sent.error_code());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(sent);
  return reactor;
}

}  // namespace

absl::Status ControlService::Authorize(const grpc::CallbackServerContext& context,
                                       const char* method, bool changes_state) const {
  if (authorizer_ == nullptr || !authorizer_->enabled()) return absl::OkStatus();
  const std::optional<std::string> token = BearerToken(context);
  if (!token.has_value()) {
    return absl::UnauthenticatedError(
        absl::StrCat("ControlService.", method,
                     " needs a token: \"authorization: Bearer <token>\" (splitctl --token_file)"));
  }
  switch (authorizer_->RoleOf(*token)) {
    case ControlRole::kAdmin:
      return absl::OkStatus();
    case ControlRole::kObserver:
      if (!changes_state) return absl::OkStatus();
      return absl::PermissionDeniedError(
          absl::StrCat("ControlService.", method,
                       " changes state; the observer token may only read (use an admin token)"));
    case ControlRole::kNone:
      break;
  }
  if (coordinator_->IsAgentToken(*token)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "ControlService.", method, " refuses agent tokens (join or session); use a control token"));
  }
  return absl::UnauthenticatedError(
      absl::StrCat("the token is not valid for ControlService.", method));
}

grpc::ServerUnaryReactor* ControlService::ApplyTopology(grpc::CallbackServerContext* context,
                                                        const v1::ApplyTopologyRequest* request,
                                                        v1::ApplyTopologyResponse* response) {
  const RpcTimer call = Timer("ApplyTopology");
  if (absl::Status allowed = Authorize(*context, "ApplyTopology", /*changes_state=*/true);
      !allowed.ok()) {
    return Finish(context, call, allowed);
  }
  if (!request->has_topology()) {
    return Finish(context, call, absl::InvalidArgumentError("topology is required"));
  }
  Coordinator::JoinToken join;
  join.token = request->join_token();
  join.required = authorizer_ != nullptr && authorizer_->enabled();
  absl::StatusOr<Coordinator::ApplyResult> result =
      coordinator_->ApplyTopology(request->topology(), join);
  if (result.ok()) {
    *response->mutable_cluster() = std::move(result->cluster);
    response->set_created(result->created);
    response->set_changed(result->changed);
  }
  return Finish(context, call, result.status());
}

grpc::ServerUnaryReactor* ControlService::GetCluster(grpc::CallbackServerContext* context,
                                                     const v1::GetClusterRequest* request,
                                                     v1::GetClusterResponse* response) {
  const RpcTimer call = Timer("GetCluster");
  if (absl::Status allowed = Authorize(*context, "GetCluster", /*changes_state=*/false);
      !allowed.ok()) {
    return Finish(context, call, allowed);
  }
  absl::StatusOr<v1::Cluster> cluster = coordinator_->GetCluster(request->name());
  if (cluster.ok()) *response->mutable_cluster() = *std::move(cluster);
  return Finish(context, call, cluster.status());
}

grpc::ServerUnaryReactor* ControlService::ListClusters(grpc::CallbackServerContext* context,
                                                       const v1::ListClustersRequest*,
                                                       v1::ListClustersResponse* response) {
  const RpcTimer call = Timer("ListClusters");
  if (absl::Status allowed = Authorize(*context, "ListClusters", /*changes_state=*/false);
      !allowed.ok()) {
    return Finish(context, call, allowed);
  }
  absl::StatusOr<std::vector<v1::Cluster>> clusters = coordinator_->ListClusters();
  if (clusters.ok()) {
    for (v1::Cluster& cluster : *clusters) *response->add_clusters() = std::move(cluster);
  }
  return Finish(context, call, clusters.status());
}

grpc::ServerUnaryReactor* ControlService::DeleteCluster(grpc::CallbackServerContext* context,
                                                        const v1::DeleteClusterRequest* request,
                                                        v1::DeleteClusterResponse* response) {
  const RpcTimer call = Timer("DeleteCluster");
  if (absl::Status allowed = Authorize(*context, "DeleteCluster", /*changes_state=*/true);
      !allowed.ok()) {
    return Finish(context, call, allowed);
  }
  absl::StatusOr<int64_t> epoch = coordinator_->DeleteCluster(request->name());
  if (epoch.ok()) response->set_last_epoch(*epoch);
  return Finish(context, call, epoch.status());
}

grpc::ServerUnaryReactor* ControlService::GetPlan(grpc::CallbackServerContext* context,
                                                  const v1::GetPlanRequest* request,
                                                  v1::GetPlanResponse* response) {
  const RpcTimer call = Timer("GetPlan");
  if (absl::Status allowed = Authorize(*context, "GetPlan", /*changes_state=*/false);
      !allowed.ok()) {
    return Finish(context, call, allowed);
  }
  plan::PlanFilter filter;
  filter.group = request->group();
  if (request->has_rank()) filter.rank = request->rank();
  absl::StatusOr<v1::Plan> plan = coordinator_->GetPlan(request->cluster(), filter);
  if (plan.ok()) *response->mutable_plan() = *std::move(plan);
  return Finish(context, call, plan.status());
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
  const RpcTimer call = Timer("GetStatus");
  if (absl::Status allowed = Authorize(*context, "GetStatus", /*changes_state=*/false);
      !allowed.ok()) {
    return Finish(context, call, allowed);
  }
  absl::StatusOr<v1::ClusterStatus> status = StatusWithWaits(request->cluster());
  if (status.ok()) *response->mutable_status() = *std::move(status);
  return Finish(context, call, status.status());
}

grpc::ServerUnaryReactor* ControlService::Reconfigure(grpc::CallbackServerContext* context,
                                                      const v1::ReconfigureRequest* request,
                                                      v1::ReconfigureResponse* response) {
  const RpcTimer call = Timer("Reconfigure");
  // A dry run changes nothing: observers may preview a change.
  if (absl::Status allowed = Authorize(*context, "Reconfigure", !request->dry_run());
      !allowed.ok()) {
    return Finish(context, call, allowed);
  }
  absl::StatusOr<v1::ReconfigureResponse> result = coordinator_->Reconfigure(*request);
  if (result.ok()) *response = *std::move(result);
  return Finish(context, call, result.status());
}

// One WatchEvents stream: writes the retained events after the requested sequence, then each
// new one as the EventLog wakes it. Reference counted like AgentService's plan streams: gRPC
// holds one reference until OnDone, a wake-up holds one while it runs.
class ControlService::EventWatcher final : public grpc::ServerWriteReactor<v1::Event> {
 public:
  EventWatcher(ControlService* service, std::string cluster, uint64_t after, RpcTimer call)
      : service_(service), cluster_(std::move(cluster)), call_(call), sent_(after) {}

  void Start() {
    EventLog* log = service_->coordinator_->events();
    subscription_ = log->Subscribe([this] {
      Ref();
      Deliver();
      Unref();
    });
    Deliver();
  }

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  void Deliver() {
    bool write = false;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      if (writing_) {
        again_ = true;
        return;
      }
      std::optional<v1::Event> next = service_->coordinator_->events()->Next(sent_, cluster_);
      if (next.has_value()) {
        event_ = *std::move(next);
        sent_ = event_.sequence();
        writing_ = true;
        write = true;
      }
    }
    if (write) StartWrite(&event_);
  }

  void End(const grpc::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
    }
    call_.Record(status.error_code());
    Finish(status);
  }

  void OnWriteDone(bool ok) override {
    bool again;
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      again = again_ || ok;
      again_ = false;
      if (!ok) {
        // A cancelled stream was finished by End already: Finish only once.
        finish = !finished_;
        finished_ = true;
        again = false;
      }
    }
    if (finish) {
      call_.Record(grpc::StatusCode::UNAVAILABLE);
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "event stream write failed"));
      return;
    }
    if (again) Deliver();
  }

  void OnCancel() override { End(grpc::Status::CANCELLED); }

  void OnDone() override {
    service_->coordinator_->events()->Unsubscribe(subscription_);
    service_->Forget(this);
    Unref();
  }

 private:
  ControlService* const service_;
  const std::string cluster_;
  const RpcTimer call_;
  std::atomic<int> refs_{1};
  uint64_t subscription_ = 0;
  absl::Mutex mu_;
  uint64_t sent_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool again_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  v1::Event event_;  // owned by the write in flight
};

grpc::ServerWriteReactor<v1::Event>* ControlService::WatchEvents(
    grpc::CallbackServerContext* context, const v1::WatchEventsRequest* request) {
  const uint64_t after = request->only_new() ? coordinator_->events()->LastSequence()
                                              : request->after_sequence();
  auto* watcher = new EventWatcher(this, request->cluster(), after, Timer("WatchEvents"));
  if (absl::Status allowed = Authorize(*context, "WatchEvents", /*changes_state=*/false);
      !allowed.ok()) {
    spdlog::debug("ControlService.WatchEvents from {}: {}", context->peer(), allowed.ToString());
    watcher->End(ToGrpcStatus(allowed));
    return watcher;
  }
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) {
      watcher->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "daemon is shutting down"));
      return watcher;
    }
    watchers_.insert(watcher);
  }
  watcher->Start();
  return watcher;
}

void ControlService::Forget(EventWatcher* watcher) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(watcher);
}

void ControlService::Shutdown() {
  std::vector<EventWatcher*> watchers;
  {
    absl::MutexLock lock(&mu_);
    shut_down_ = true;
    for (EventWatcher* watcher : watchers_) {
      watcher->Ref();
      watchers.push_back(watcher);
    }
  }
  for (EventWatcher* watcher : watchers) {
    watcher->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "daemon is shutting down"));
    watcher->Unref();
  }
}

ControlService::~ControlService() = default;

}  // namespace splitd::daemon
