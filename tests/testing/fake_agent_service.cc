#include "tests/testing/fake_agent_service.h"

#include <utility>

#include "absl/time/time.h"

namespace splitd::testing {

void FakeAgentService::Publish(v1::WatchPlanResponse message) {
  absl::MutexLock lock(&mu_);
  plans_.push_back(std::move(message));
}

std::vector<v1::ReportGroupStatusRequest> FakeAgentService::reports() {
  absl::MutexLock lock(&mu_);
  return reports_;
}

v1::MemberIdentity FakeAgentService::identity() {
  absl::MutexLock lock(&mu_);
  return identity_;
}

bool FakeAgentService::AwaitReport(
    const std::function<bool(const v1::ReportGroupStatusRequest&)>& match) {
  absl::MutexLock lock(&mu_);
  auto arrived = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& report : reports_) {
      if (match(report)) return true;
    }
    return false;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&arrived), absl::Seconds(20));
}

grpc::Status FakeAgentService::Register(grpc::ServerContext*, const v1::RegisterRequest* request,
                                        v1::RegisterResponse* response) {
  absl::MutexLock lock(&mu_);
  identity_ = request->identity();
  response->set_member_id("m-1");
  response->set_session_token("secret");
  response->set_heartbeat_interval_ms(50);
  return grpc::Status::OK;
}

grpc::Status FakeAgentService::WatchPlan(grpc::ServerContext* context,
                                         const v1::WatchPlanRequest* request,
                                         grpc::ServerWriter<v1::WatchPlanResponse>* writer) {
  if (request->member().session_token() != "secret") {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "bad token");
  }
  size_t sent = 0;
  while (!context->IsCancelled()) {
    std::vector<v1::WatchPlanResponse> to_send;
    {
      absl::MutexLock lock(&mu_);
      auto more = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return plans_.size() > sent; };
      mu_.AwaitWithTimeout(absl::Condition(&more), absl::Milliseconds(10));
      to_send.assign(plans_.begin() + static_cast<long>(sent), plans_.end());
      sent = plans_.size();
    }
    for (const auto& message : to_send) writer->Write(message);
  }
  return grpc::Status::OK;
}

grpc::Status FakeAgentService::Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* request,
                                         v1::HeartbeatResponse* response) {
  response->set_epoch(request->epoch());
  return grpc::Status::OK;
}

grpc::Status FakeAgentService::ReportGroupStatus(grpc::ServerContext*,
                                                 const v1::ReportGroupStatusRequest* request,
                                                 v1::ReportGroupStatusResponse*) {
  absl::MutexLock lock(&mu_);
  reports_.push_back(*request);
  return grpc::Status::OK;
}

}  // namespace splitd::testing
