#include "worker/workload_bridge.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/grpc_status.h"
#include "grpcpp/client_context.h"
#include "nlohmann/json.hpp"

namespace splitd::worker {
namespace {

// How often a wait looks at whether its client is still there.
constexpr absl::Duration kPollSlice = absl::Milliseconds(100);

std::string Prefixed(const std::string& key) {
  return absl::StrCat(WorkloadBridge::kKeyPrefix, key);
}

// A daemon answer as the workload should see it: the session being the agent's business, a
// refused one means "the agent is reconnecting; retry".
absl::Status FromDaemon(const grpc::Status& status) {
  absl::Status converted = FromGrpcStatus(status);
  if (converted.code() == absl::StatusCode::kUnauthenticated ||
      converted.code() == absl::StatusCode::kPermissionDenied) {
    return absl::UnavailableError(
        absl::StrCat("the agent's session is being renewed; retry (", converted.message(), ")"));
  }
  return converted;
}

}  // namespace

WorkloadBridge::WorkloadBridge(std::string cluster, absl::Duration rpc_timeout,
                               v1::AgentService::StubInterface* stub, CredentialsFn credentials,
                               AgentStatusFn agent_status)
    : cluster_(std::move(cluster)),
      rpc_timeout_(rpc_timeout),
      stub_(stub),
      credentials_(std::move(credentials)),
      agent_status_(std::move(agent_status)) {}

void WorkloadBridge::Publish(HandOver hand_over) {
  absl::MutexLock lock(&mu_);
  hand_over_ = std::move(hand_over);
}

void WorkloadBridge::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
}

bool WorkloadBridge::cancelled(const ClientGone& gone) const {
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return true;
  }
  return gone && gone();
}

absl::StatusOr<std::string> WorkloadBridge::PlanDocument(int64_t after, absl::Time deadline,
                                                         const ClientGone& gone) {
  auto ready = [this, after]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (shutdown_) return true;
    if (!hand_over_.has_value()) return false;
    return after < 0 || hand_over_->epoch > after || hand_over_->state == "EXCLUDED";
  };
  absl::MutexLock lock(&mu_);
  while (true) {
    if (shutdown_) return absl::CancelledError("the agent is stopping");
    if (ready()) break;
    if (after < 0) return absl::UnavailableError("the agent has no plan yet");
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "no plan of an epoch above ", after, " yet; the agent holds ",
          hand_over_.has_value() ? absl::StrCat("epoch ", hand_over_->epoch) : "none"));
    }
    mu_.AwaitWithTimeout(absl::Condition(&ready), std::min(kPollSlice, deadline - now));
    if (gone && !ready()) {
      mu_.Unlock();
      const bool client_gone = gone();
      mu_.Lock();
      if (client_gone) return absl::CancelledError("the client went away");
    }
  }
  return hand_over_->document;
}

std::string WorkloadBridge::StatusDocument() {
  const auto [phase, member_id] = agent_status_();
  nlohmann::json doc = {{"cluster", cluster_}, {"member_id", member_id}, {"phase", phase}};
  absl::MutexLock lock(&mu_);
  doc["epoch"] = hand_over_.has_value() ? hand_over_->epoch : 0;
  doc["rank"] = hand_over_.has_value() ? hand_over_->rank : -1;
  doc["state"] = hand_over_.has_value() ? hand_over_->state : "";
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<std::pair<v1::MemberCredentials, HandOver>> WorkloadBridge::Fence(
    int64_t epoch) const {
  HandOver held;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return absl::CancelledError("the agent is stopping");
    if (!hand_over_.has_value()) {
      return absl::FailedPreconditionError("the agent holds no epoch yet");
    }
    held = *hand_over_;
  }
  if (epoch != held.epoch) {
    return absl::AbortedError(absl::StrCat("epoch ", epoch, " is not the agent's: it holds epoch ",
                                           held.epoch, " (read the plan again)"));
  }
  if (held.rank < 0 || held.state == "EXCLUDED") {
    return absl::FailedPreconditionError(
        absl::StrCat("the agent holds no rank in epoch ", held.epoch, " (", held.state, ")"));
  }
  std::optional<v1::MemberCredentials> member = credentials_();
  if (!member.has_value()) {
    return absl::UnavailableError("the agent is registering with the daemon; retry");
  }
  return std::make_pair(*std::move(member), std::move(held));
}

absl::StatusOr<StoreResult> WorkloadBridge::Store(const StoreOp& op, const ClientGone& gone) {
  auto fenced = Fence(op.epoch);
  if (!fenced.ok()) return fenced.status();
  if (op.kind == StoreOp::Kind::kGet || op.kind == StoreOp::Kind::kWait) {
    return WaitForKeys(op, fenced->first, gone);
  }
  return Call(op, fenced->first);
}

absl::StatusOr<StoreResult> WorkloadBridge::WaitForKeys(const StoreOp& op,
                                                        const v1::MemberCredentials& member,
                                                        const ClientGone& gone) {
  struct Pending {
    grpc::ClientContext context;
    v1::KvGetRequest request;
    v1::KvGetResponse response;
    grpc::Status status;
    absl::Notification done;
  };
  auto call = std::make_shared<Pending>();
  *call->request.mutable_member() = member;
  call->request.set_epoch(op.epoch);
  for (const std::string& key : op.keys) call->request.add_keys(Prefixed(key));
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + op.timeout));
  stub_->async()->KvGet(&call->context, &call->request, &call->response,
                        [call](grpc::Status status) {
                          call->status = std::move(status);
                          call->done.Notify();
                        });
  bool cancel_sent = false;
  while (!call->done.WaitForNotificationWithTimeout(kPollSlice)) {
    if (!cancel_sent && cancelled(gone)) {
      call->context.TryCancel();
      cancel_sent = true;
    }
  }
  if (!call->status.ok()) {
    if (call->status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      return absl::DeadlineExceededError(absl::StrCat(
          "keys not set within ", absl::FormatDuration(op.timeout), ": ", op.keys.front(),
          op.keys.size() > 1 ? absl::StrCat(" and ", op.keys.size() - 1, " more") : ""));
    }
    return FromDaemon(call->status);
  }
  StoreResult result;
  if (op.kind == StoreOp::Kind::kGet) {
    result.values.assign(call->response.values().begin(), call->response.values().end());
  }
  return result;
}

absl::StatusOr<StoreResult> WorkloadBridge::Call(const StoreOp& op,
                                                 const v1::MemberCredentials& member) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + rpc_timeout_));
  StoreResult result;
  grpc::Status status;
  using Kind = StoreOp::Kind;
  switch (op.kind) {
    case Kind::kSet: {
      v1::KvSetRequest request;
      *request.mutable_member() = member;
      request.set_epoch(op.epoch);
      request.set_key(Prefixed(op.keys.front()));
      request.set_value(op.value);
      v1::KvSetResponse response;
      status = stub_->KvSet(&context, request, &response);
      break;
    }
    case Kind::kAdd: {
      v1::KvAddRequest request;
      *request.mutable_member() = member;
      request.set_epoch(op.epoch);
      request.set_key(Prefixed(op.keys.front()));
      request.set_delta(op.delta);
      v1::KvAddResponse response;
      status = stub_->KvAdd(&context, request, &response);
      result.number = response.value();
      break;
    }
    case Kind::kCompareSet: {
      v1::KvCompareSetRequest request;
      *request.mutable_member() = member;
      request.set_epoch(op.epoch);
      request.set_key(Prefixed(op.keys.front()));
      request.set_expected(op.expected);
      request.set_desired(op.desired);
      v1::KvCompareSetResponse response;
      status = stub_->KvCompareSet(&context, request, &response);
      result.value = response.value();
      break;
    }
    case Kind::kCheck:
    case Kind::kNumKeys: {
      v1::KvCheckRequest request;
      *request.mutable_member() = member;
      request.set_epoch(op.epoch);
      for (const std::string& key : op.keys) request.add_keys(Prefixed(key));
      request.set_prefix(kKeyPrefix);
      v1::KvCheckResponse response;
      status = stub_->KvCheck(&context, request, &response);
      result.flag = response.all_exist();
      result.number = response.num_keys();
      break;
    }
    case Kind::kDelete: {
      v1::KvDeleteRequest request;
      *request.mutable_member() = member;
      request.set_epoch(op.epoch);
      request.set_key(Prefixed(op.keys.front()));
      v1::KvDeleteResponse response;
      status = stub_->KvDelete(&context, request, &response);
      result.flag = response.deleted();
      break;
    }
    default:
      return absl::InternalError("store operation routed to the wrong call");
  }
  if (!status.ok()) return FromDaemon(status);
  return result;
}

absl::StatusOr<v1::Phase> WorkloadBridge::Report(const v1::ReportGroupStatusRequest& report) {
  auto fenced = Fence(report.epoch());
  if (!fenced.ok()) return fenced.status();
  const auto& [member, held] = *fenced;
  if (report.rank() != held.rank) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank must be ", held.rank, " (this agent's rank), got ", report.rank()));
  }
  v1::ReportGroupStatusRequest request = report;
  *request.mutable_member() = member;
  request.set_layer(v1::REPORT_LAYER_WORKLOAD);
  request.set_fingerprint(held.fingerprint);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + rpc_timeout_));
  v1::ReportGroupStatusResponse response;
  const grpc::Status status = stub_->ReportGroupStatus(&context, request, &response);
  if (!status.ok()) return FromDaemon(status);
  return response.cluster_phase();
}

}  // namespace splitd::worker
