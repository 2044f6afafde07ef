#include "daemon/agent_service.h"

#include <chrono>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "spdlog/spdlog.h"

namespace splitd::daemon {
namespace {

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context, const RpcTimer& call,
                                 const absl::Status& status) {
  if (!status.ok()) {
    spdlog::debug("AgentService.{} from {}: {}", call.method(), context->peer(),
                  status.ToString());
  }
  const grpc::Status sent = ToGrpcStatus(status);
  call.Record(sent.error_code());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(sent);
  return reactor;
}

absl::Time DeadlineOf(const grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  const auto now = std::chrono::system_clock::now();
  // No deadline shows as a time point centuries away; the rendezvous caps every wait anyway.
  if (deadline - now > std::chrono::hours(24 * 365)) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

}  // namespace

// One WatchPlan stream. Reference counted: gRPC holds one reference until OnDone, and
// AgentService takes one while it delivers an event, so the object outlives both.
class AgentService::PlanWatcher final : public grpc::ServerWriteReactor<v1::WatchPlanResponse> {
 public:
  PlanWatcher(AgentService* service, v1::MemberCredentials member, int64_t known_epoch,
              RpcTimer call)
      : service_(service), member_(std::move(member)), call_(call), known_epoch_(known_epoch) {}

  const std::string& cluster() const { return member_.cluster(); }

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Sends the member's next plan if there is one and no write is in flight.
  void Deliver() {
    bool write = false;
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || finishing_.has_value()) return;
      if (writing_) {
        again_ = true;
        return;
      }
      absl::StatusOr<std::optional<v1::WatchPlanResponse>> next =
          service_->coordinator_->NextPlan(member_, known_epoch_);
      if (!next.ok()) {
        finished_ = true;
        finish = ToGrpcStatus(next.status());
      } else if (next->has_value()) {
        response_ = **std::move(next);
        known_epoch_ = response_.plan().epoch();
        writing_ = true;
        write = true;
        spdlog::debug("WatchPlan {}/{}: sending epoch {} (rank {})", member_.cluster(),
                      member_.member_id(), known_epoch_, response_.rank());
      }
    }
    if (write) StartWrite(&response_);
    if (finish.has_value()) FinishStream(*finish);
  }

  // Ends the stream with `status` (after the write in flight, if any).
  void End(const grpc::Status& status) {
    bool now = false;
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || finishing_.has_value()) return;
      if (writing_) {
        finishing_ = status;
      } else {
        finished_ = true;
        now = true;
      }
    }
    if (now) FinishStream(status);
  }

  void OnWriteDone(bool ok) override {
    std::optional<grpc::Status> finish;
    bool again = false;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (finishing_.has_value() || !ok) {
        if (!finished_) {
          finished_ = true;
          finish = finishing_.value_or(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                                    "plan stream write failed"));
        }
      } else {
        again = again_;
        again_ = false;
      }
    }
    if (finish.has_value()) {
      FinishStream(*finish);
      return;
    }
    if (again) Deliver();
  }

  void OnCancel() override { End(grpc::Status::CANCELLED); }

  void OnDone() override {
    service_->Unregister(this);
    Unref();
  }

 private:
  void FinishStream(const grpc::Status& status) {
    call_.Record(status.error_code());
    Finish(status);
  }

  AgentService* const service_;
  const v1::MemberCredentials member_;
  const RpcTimer call_;
  std::atomic<int> refs_{1};

  absl::Mutex mu_;
  int64_t known_epoch_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool again_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> finishing_ ABSL_GUARDED_BY(mu_);
  v1::WatchPlanResponse response_;  // owned by the write in flight
};

namespace {

// A KvGet that waits for its keys in the rendezvous space without holding a thread.
class KvGetReactor final : public grpc::ServerUnaryReactor {
 public:
  KvGetReactor(RendezvousSpaces* spaces, uint64_t waiter_id, v1::KvGetResponse* response,
               RpcTimer call)
      : spaces_(spaces), waiter_id_(waiter_id), response_(response), call_(call) {}

  void Start(grpc::CallbackServerContext* context, const v1::KvGetRequest& request) {
    std::vector<std::string> keys(request.keys().begin(), request.keys().end());
    spaces_->Get(request.member().cluster(), request.epoch(), request.member().member_id(),
                 std::move(keys), DeadlineOf(context), waiter_id_,
                 [this](absl::StatusOr<std::vector<std::string>> values) {
                   Complete(std::move(values));
                 });
    // A cancellation that came before the waiter was registered would have found nothing.
    if (context->IsCancelled() && spaces_->Cancel(waiter_id_)) FinishOnce(grpc::Status::CANCELLED);
  }

  void OnCancel() override {
    if (spaces_->Cancel(waiter_id_)) FinishOnce(grpc::Status::CANCELLED);
  }

  void OnDone() override { delete this; }

 private:
  void Complete(absl::StatusOr<std::vector<std::string>> values) {
    if (values.ok()) {
      for (std::string& value : *values) response_->add_values(std::move(value));
    }
    FinishOnce(ToGrpcStatus(values.status()));
  }

  void FinishOnce(const grpc::Status& status) {
    if (finished_.exchange(true)) return;
    call_.Record(status.error_code());
    Finish(status);
  }

  RendezvousSpaces* const spaces_;
  const uint64_t waiter_id_;
  v1::KvGetResponse* const response_;
  const RpcTimer call_;
  std::atomic<bool> finished_{false};
};

}  // namespace

grpc::ServerUnaryReactor* AgentService::Register(grpc::CallbackServerContext* context,
                                                 const v1::RegisterRequest* request,
                                                 v1::RegisterResponse* response) {
  const RpcTimer call = Timer("Register");
  const std::optional<std::string> token = BearerToken(*context);
  absl::Status allowed = coordinator_->AuthorizeJoin(request->identity().cluster(), token);
  if (allowed.code() == absl::StatusCode::kUnauthenticated && token.has_value() &&
      authorizer_ != nullptr && authorizer_->RoleOf(*token) != ControlRole::kNone) {
    allowed = absl::PermissionDeniedError(
        "Register refuses control tokens; agents present their cluster's join token");
  }
  if (!allowed.ok()) return Finish(context, call, allowed);
  absl::StatusOr<v1::RegisterResponse> result = coordinator_->Register(*request);
  if (result.ok()) *response = *std::move(result);
  return Finish(context, call, result.status());
}

grpc::ServerWriteReactor<v1::WatchPlanResponse>* AgentService::WatchPlan(
    grpc::CallbackServerContext* context, const v1::WatchPlanRequest* request) {
  auto* watcher =
      new PlanWatcher(this, request->member(), request->known_epoch(), Timer("WatchPlan"));
  absl::Status refused;
  if (request->known_epoch() < 0) {
    refused = absl::InvalidArgumentError(
        absl::StrCat("known_epoch must be >= 0, got ", request->known_epoch()));
  } else if (absl::StatusOr<std::optional<v1::WatchPlanResponse>> check =
                 coordinator_->NextPlan(request->member(), std::numeric_limits<int64_t>::max());
             !check.ok()) {
    refused = check.status();
  }
  {
    absl::MutexLock lock(&mu_);
    if (refused.ok() && shut_down_) refused = absl::UnavailableError("daemon is shutting down");
    if (refused.ok()) watchers_[request->member().cluster()].insert(watcher);
  }
  if (!refused.ok()) {
    spdlog::debug("AgentService.WatchPlan from {}: {}", context->peer(), refused.ToString());
    watcher->End(ToGrpcStatus(refused));
    return watcher;
  }
  watcher->Deliver();
  return watcher;
}

grpc::ServerUnaryReactor* AgentService::Heartbeat(grpc::CallbackServerContext* context,
                                                  const v1::HeartbeatRequest* request,
                                                  v1::HeartbeatResponse* response) {
  const RpcTimer call = Timer("Heartbeat");
  absl::StatusOr<v1::HeartbeatResponse> result = coordinator_->Heartbeat(*request);
  if (result.ok()) *response = *std::move(result);
  return Finish(context, call, result.status());
}

grpc::ServerUnaryReactor* AgentService::ReportGroupStatus(
    grpc::CallbackServerContext* context, const v1::ReportGroupStatusRequest* request,
    v1::ReportGroupStatusResponse* response) {
  const RpcTimer call = Timer("ReportGroupStatus");
  absl::StatusOr<v1::ReportGroupStatusResponse> result =
      coordinator_->ReportGroupStatus(*request);
  if (result.ok()) *response = *std::move(result);
  return Finish(context, call, result.status());
}

grpc::ServerUnaryReactor* AgentService::KvSet(grpc::CallbackServerContext* context,
                                              const v1::KvSetRequest* request,
                                              v1::KvSetResponse*) {
  const RpcTimer call = Timer("KvSet");
  absl::Status status = coordinator_->AuthorizeRendezvous(request->member(), request->epoch());
  if (status.ok()) {
    status = spaces_->Set(request->member().cluster(), request->epoch(), request->key(),
                          request->value());
  }
  return Finish(context, call, status);
}

grpc::ServerUnaryReactor* AgentService::KvGet(grpc::CallbackServerContext* context,
                                              const v1::KvGetRequest* request,
                                              v1::KvGetResponse* response) {
  const RpcTimer call = Timer("KvGet");
  absl::Status status = coordinator_->AuthorizeRendezvous(request->member(), request->epoch());
  if (!status.ok()) return Finish(context, call, status);
  auto* reactor = new KvGetReactor(spaces_, next_waiter_id_.fetch_add(1), response, call);
  reactor->Start(context, *request);
  return reactor;
}

grpc::ServerUnaryReactor* AgentService::KvAdd(grpc::CallbackServerContext* context,
                                              const v1::KvAddRequest* request,
                                              v1::KvAddResponse* response) {
  const RpcTimer call = Timer("KvAdd");
  absl::Status status = coordinator_->AuthorizeRendezvous(request->member(), request->epoch());
  if (status.ok()) {
    absl::StatusOr<int64_t> value = spaces_->Add(request->member().cluster(), request->epoch(),
                                                 request->key(), request->delta());
    if (value.ok()) response->set_value(*value);
    status = value.status();
  }
  return Finish(context, call, status);
}

grpc::ServerUnaryReactor* AgentService::KvCompareSet(grpc::CallbackServerContext* context,
                                                     const v1::KvCompareSetRequest* request,
                                                     v1::KvCompareSetResponse* response) {
  const RpcTimer call = Timer("KvCompareSet");
  absl::Status status = coordinator_->AuthorizeRendezvous(request->member(), request->epoch());
  if (status.ok()) {
    absl::StatusOr<std::string> value =
        spaces_->CompareSet(request->member().cluster(), request->epoch(), request->key(),
                            request->expected(), request->desired());
    if (value.ok()) response->set_value(*std::move(value));
    status = value.status();
  }
  return Finish(context, call, status);
}

grpc::ServerUnaryReactor* AgentService::KvCheck(grpc::CallbackServerContext* context,
                                                const v1::KvCheckRequest* request,
                                                v1::KvCheckResponse* response) {
  const RpcTimer call = Timer("KvCheck");
  absl::Status status = coordinator_->AuthorizeRendezvous(request->member(), request->epoch());
  if (status.ok()) {
    const std::vector<std::string> keys(request->keys().begin(), request->keys().end());
    absl::StatusOr<RendezvousSpaces::CheckResult> result =
        spaces_->Check(request->member().cluster(), request->epoch(), keys, request->prefix());
    if (result.ok()) {
      response->set_all_exist(result->all_exist);
      response->set_num_keys(result->num_keys);
    }
    status = result.status();
  }
  return Finish(context, call, status);
}

grpc::ServerUnaryReactor* AgentService::KvDelete(grpc::CallbackServerContext* context,
                                                 const v1::KvDeleteRequest* request,
                                                 v1::KvDeleteResponse* response) {
  const RpcTimer call = Timer("KvDelete");
  absl::Status status = coordinator_->AuthorizeRendezvous(request->member(), request->epoch());
  if (status.ok()) {
    absl::StatusOr<bool> existed =
        spaces_->Delete(request->member().cluster(), request->epoch(), request->key());
    if (existed.ok()) response->set_deleted(*existed);
    status = existed.status();
  }
  return Finish(context, call, status);
}

void AgentService::OnClusterEvent(const ClusterEvent& event) {
  spaces_->Drop(event.cluster,
                event.deleted ? std::numeric_limits<int64_t>::max() : event.epoch);
  std::vector<PlanWatcher*> watchers;
  {
    absl::MutexLock lock(&mu_);
    auto it = watchers_.find(event.cluster);
    if (it == watchers_.end()) return;
    for (PlanWatcher* watcher : it->second) {
      watcher->Ref();
      watchers.push_back(watcher);
    }
  }
  for (PlanWatcher* watcher : watchers) {
    watcher->Deliver();  // a deleted cluster ends the stream with NOT_FOUND
    watcher->Unref();
  }
}

void AgentService::Shutdown() {
  std::vector<PlanWatcher*> watchers;
  {
    absl::MutexLock lock(&mu_);
    shut_down_ = true;
    for (auto& [cluster, set] : watchers_) {
      for (PlanWatcher* watcher : set) {
        watcher->Ref();
        watchers.push_back(watcher);
      }
    }
  }
  for (PlanWatcher* watcher : watchers) {
    watcher->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "daemon is shutting down"));
    watcher->Unref();
  }
}

void AgentService::Unregister(PlanWatcher* watcher) {
  absl::MutexLock lock(&mu_);
  auto it = watchers_.find(watcher->cluster());
  if (it == watchers_.end()) return;
  it->second.erase(watcher);
  if (it->second.empty()) watchers_.erase(it);
}

}  // namespace splitd::daemon
