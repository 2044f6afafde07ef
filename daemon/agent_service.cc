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
#include "daemon/stream_reactor.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/slice.h"
#include "spdlog/spdlog.h"

namespace splitd::daemon {
namespace {

absl::Time DeadlineOf(const grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  const auto now = std::chrono::system_clock::now();
  // No deadline shows as a time point centuries away; the rendezvous caps every wait anyway.
  if (deadline - now > std::chrono::hours(24 * 365)) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

// The WatchPlanResponse of `plan`: the epoch's shared encoding of field `plan`, referenced (the
// slice holds the string alive), then field `rank`. Fields encoded one after the other are one
// message.
grpc::ByteBuffer WatchPlanMessage(const Coordinator::PlanForMember& plan) {
  auto* held = new std::shared_ptr<const std::string>(plan.plan_field);
  grpc::Slice shared(
      const_cast<char*>((*held)->data()), (*held)->size(),
      [](void* kept) { delete static_cast<std::shared_ptr<const std::string>*>(kept); }, held);
  v1::WatchPlanResponse rank_only;
  rank_only.set_rank(plan.rank);
  grpc::Slice slices[] = {std::move(shared), grpc::Slice(rank_only.SerializeAsString())};
  return grpc::ByteBuffer(slices, 2);
}

// One WatchPlan stream: sends the member's plan whenever the Coordinator has a newer one. The
// Coordinator checks the member's session on every pull, so a stream whose member is gone (or
// whose cluster was deleted) ends with the Coordinator's status.
class PlanStream final : public StreamReactor<grpc::ByteBuffer> {
 public:
  PlanStream(ServiceCall call, Coordinator* coordinator, v1::MemberCredentials member,
             int64_t known_epoch)
      : StreamReactor(call, "plan stream write failed"),
        coordinator_(coordinator),
        member_(std::move(member)),
        known_epoch_(known_epoch) {}

 private:
  absl::StatusOr<std::optional<grpc::ByteBuffer>> Next() override {
    absl::StatusOr<std::optional<Coordinator::PlanForMember>> next =
        coordinator_->NextPlan(member_, known_epoch_);
    if (!next.ok()) return next.status();
    if (!counted_) {
      // The session is the member's: its stream counts toward its liveness (Leases).
      coordinator_->PlanStreamOpened(member_);
      counted_ = true;
    }
    if (!next->has_value()) return std::nullopt;
    known_epoch_ = (*next)->epoch;
    spdlog::debug("WatchPlan {}/{}: sending epoch {} (rank {})", member_.cluster(),
                  member_.member_id(), known_epoch_, (*next)->rank);
    return WatchPlanMessage(**next);
  }

  // Runs once gRPC is done with the stream, after every Next.
  void Closed() override {
    if (counted_) coordinator_->PlanStreamClosed(member_);
  }

  Coordinator* const coordinator_;
  const v1::MemberCredentials member_;
  int64_t known_epoch_;   // touched by Next only
  bool counted_ = false;  // set by Next; read by Closed, which runs after the last Next
};

// A KvGet that waits for its keys in the rendezvous space without holding a thread.
class KvGetReactor final : public grpc::ServerUnaryReactor {
 public:
  KvGetReactor(RendezvousSpaces* spaces, uint64_t waiter_id, v1::KvGetResponse* response,
               ServiceCall call)
      : spaces_(spaces), waiter_id_(waiter_id), response_(response), call_(call) {}

  void Start(const v1::KvGetRequest& request) {
    std::vector<std::string> keys(request.keys().begin(), request.keys().end());
    spaces_->Get(
        request.member().cluster(), request.epoch(), request.member().member_id(), std::move(keys),
        DeadlineOf(call_.context()), waiter_id_,
        [this](absl::StatusOr<std::vector<std::string>> values) { Complete(std::move(values)); });
    // A cancellation that came before the waiter was registered would have found nothing.
    if (call_.context()->IsCancelled() && spaces_->Cancel(waiter_id_)) {
      FinishOnce(grpc::Status::CANCELLED);
    }
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
    call_.Ended(status);
    Finish(status);
  }

  RendezvousSpaces* const spaces_;
  const uint64_t waiter_id_;
  v1::KvGetResponse* const response_;
  const ServiceCall call_;
  std::atomic<bool> finished_{false};
};

}  // namespace

absl::Status AgentService::Authorize(const ServiceCall& call, const std::string& cluster) const {
  Authorizer::Call subject = call.ToAuthorize();
  subject.cluster = cluster;
  return authorizer_->Authorize(subject);
}

template <typename Op>
absl::Status AgentService::InSpace(const v1::MemberCredentials& member, int64_t epoch,
                                   Op op) const {
  absl::Status allowed = coordinator_->AuthorizeRendezvous(member, epoch);
  if (!allowed.ok()) return allowed;
  return op();
}

grpc::ServerUnaryReactor* AgentService::Register(grpc::CallbackServerContext* context,
                                                 const v1::RegisterRequest* request,
                                                 v1::RegisterResponse* response) {
  const ServiceCall call = Call(context, "Register");
  if (absl::Status allowed = Authorize(call, request->identity().cluster()); !allowed.ok()) {
    return call.Finish(allowed);
  }
  // Answered once the registration is durable; no gRPC thread waits for the disk meanwhile.
  grpc::ServerUnaryReactor* reactor = call.Defer();
  coordinator_->Register(*request,
                         [call, reactor, response](absl::StatusOr<v1::RegisterResponse> result) {
                           if (result.ok()) *response = *std::move(result);
                           call.Complete(reactor, result.status());
                         });
  return reactor;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* AgentService::WatchPlan(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* raw) {
  const ServiceCall call = Call(context, "WatchPlan");
  v1::WatchPlanRequest request;
  grpc::ByteBuffer copy(*raw);  // shares the slices; parsing reads through a mutable buffer
  const bool parsed =
      grpc::GenericDeserialize<grpc::ProtoBufferReader, v1::WatchPlanRequest>(&copy, &request).ok();
  auto* stream = new PlanStream(call, coordinator_, request.member(), request.known_epoch());
  absl::Status refused = Authorize(call);
  if (refused.ok() && !parsed) {
    refused = absl::InvalidArgumentError("the WatchPlanRequest does not parse");
  }
  if (refused.ok() && request.known_epoch() < 0) {
    refused = absl::InvalidArgumentError(
        absl::StrCat("known_epoch must be >= 0, got ", request.known_epoch()));
  }
  if (!refused.ok()) {
    stream->Refuse(refused);
    return stream;
  }
  // The first pull checks the member's session: a refused stream ends with its status.
  stream->Open(&streams_, request.member().cluster());
  return stream;
}

grpc::ServerUnaryReactor* AgentService::Heartbeat(grpc::CallbackServerContext* context,
                                                  const v1::HeartbeatRequest* request,
                                                  v1::HeartbeatResponse* response) {
  const ServiceCall call = Call(context, "Heartbeat");
  if (absl::Status allowed = Authorize(call); !allowed.ok()) return call.Finish(allowed);
  return call.Reply(coordinator_->Heartbeat(*request), response);
}

grpc::ServerUnaryReactor* AgentService::ReportGroupStatus(
    grpc::CallbackServerContext* context, const v1::ReportGroupStatusRequest* request,
    v1::ReportGroupStatusResponse* response) {
  const ServiceCall call = Call(context, "ReportGroupStatus");
  if (absl::Status allowed = Authorize(call); !allowed.ok()) return call.Finish(allowed);
  grpc::ServerUnaryReactor* reactor = call.Defer();
  coordinator_->ReportGroupStatus(
      *request, [call, reactor, response](absl::StatusOr<v1::ReportGroupStatusResponse> result) {
        if (result.ok()) *response = *std::move(result);
        call.Complete(reactor, result.status());
      });
  return reactor;
}

grpc::ServerUnaryReactor* AgentService::KvSet(grpc::CallbackServerContext* context,
                                              const v1::KvSetRequest* request, v1::KvSetResponse*) {
  const ServiceCall call = Call(context, "KvSet");
  if (absl::Status allowed = Authorize(call); !allowed.ok()) return call.Finish(allowed);
  absl::Status status = coordinator_->AuthorizeRendezvous(request->member(), request->epoch());
  if (!status.ok()) return call.Finish(status);
  // Answered once the key is durable; no gRPC thread waits for the disk meanwhile.
  grpc::ServerUnaryReactor* reactor = call.Defer();
  spaces_->Set(request->member().cluster(), request->epoch(), request->key(), request->value(),
               [call, reactor](absl::Status result) { call.Complete(reactor, result); });
  return reactor;
}

grpc::ServerUnaryReactor* AgentService::KvGet(grpc::CallbackServerContext* context,
                                              const v1::KvGetRequest* request,
                                              v1::KvGetResponse* response) {
  const ServiceCall call = Call(context, "KvGet");
  if (absl::Status allowed = Authorize(call); !allowed.ok()) return call.Finish(allowed);
  absl::Status status = coordinator_->AuthorizeRendezvous(request->member(), request->epoch());
  if (!status.ok()) return call.Finish(status);
  auto* reactor = new KvGetReactor(spaces_, next_waiter_id_.fetch_add(1), response, call);
  reactor->Start(*request);
  return reactor;
}

grpc::ServerUnaryReactor* AgentService::KvAdd(grpc::CallbackServerContext* context,
                                              const v1::KvAddRequest* request,
                                              v1::KvAddResponse* response) {
  const ServiceCall call = Call(context, "KvAdd");
  if (absl::Status allowed = Authorize(call); !allowed.ok()) return call.Finish(allowed);
  absl::Status status = coordinator_->AuthorizeRendezvous(request->member(), request->epoch());
  if (!status.ok()) return call.Finish(status);
  grpc::ServerUnaryReactor* reactor = call.Defer();
  spaces_->Add(request->member().cluster(), request->epoch(), request->key(), request->delta(),
               [call, reactor, response](absl::StatusOr<int64_t> value) {
                 if (value.ok()) response->set_value(*value);
                 call.Complete(reactor, value.status());
               });
  return reactor;
}

grpc::ServerUnaryReactor* AgentService::KvCompareSet(grpc::CallbackServerContext* context,
                                                     const v1::KvCompareSetRequest* request,
                                                     v1::KvCompareSetResponse* response) {
  const ServiceCall call = Call(context, "KvCompareSet");
  if (absl::Status allowed = Authorize(call); !allowed.ok()) return call.Finish(allowed);
  absl::Status status = coordinator_->AuthorizeRendezvous(request->member(), request->epoch());
  if (!status.ok()) return call.Finish(status);
  grpc::ServerUnaryReactor* reactor = call.Defer();
  spaces_->CompareSet(request->member().cluster(), request->epoch(), request->key(),
                      request->expected(), request->desired(),
                      [call, reactor, response](absl::StatusOr<std::string> value) {
                        if (value.ok()) response->set_value(*std::move(value));
                        call.Complete(reactor, value.status());
                      });
  return reactor;
}

grpc::ServerUnaryReactor* AgentService::KvCheck(grpc::CallbackServerContext* context,
                                                const v1::KvCheckRequest* request,
                                                v1::KvCheckResponse* response) {
  const ServiceCall call = Call(context, "KvCheck");
  if (absl::Status allowed = Authorize(call); !allowed.ok()) return call.Finish(allowed);
  return call.Finish(InSpace(request->member(), request->epoch(), [&] {
    const std::vector<std::string> keys(request->keys().begin(), request->keys().end());
    absl::StatusOr<RendezvousSpaces::CheckResult> result =
        spaces_->Check(request->member().cluster(), request->epoch(), keys, request->prefix());
    if (result.ok()) {
      response->set_all_exist(result->all_exist);
      response->set_num_keys(result->num_keys);
    }
    return result.status();
  }));
}

grpc::ServerUnaryReactor* AgentService::KvDelete(grpc::CallbackServerContext* context,
                                                 const v1::KvDeleteRequest* request,
                                                 v1::KvDeleteResponse* response) {
  const ServiceCall call = Call(context, "KvDelete");
  if (absl::Status allowed = Authorize(call); !allowed.ok()) return call.Finish(allowed);
  absl::Status status = coordinator_->AuthorizeRendezvous(request->member(), request->epoch());
  if (!status.ok()) return call.Finish(status);
  grpc::ServerUnaryReactor* reactor = call.Defer();
  spaces_->Delete(request->member().cluster(), request->epoch(), request->key(),
                  [call, reactor, response](absl::StatusOr<bool> existed) {
                    if (existed.ok()) response->set_deleted(*existed);
                    call.Complete(reactor, existed.status());
                  });
  return reactor;
}

void AgentService::OnClusterEvent(const ClusterEvent& event) {
  spaces_->Drop(event.cluster, event.deleted ? std::numeric_limits<int64_t>::max() : event.epoch);
  streams_.WakeGroup(event.cluster);  // a deleted cluster ends its streams with NOT_FOUND
}

void AgentService::Shutdown() { streams_.Shutdown(); }

}  // namespace splitd::daemon
