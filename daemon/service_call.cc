#include "daemon/service_call.h"

#include <string>

#include "absl/strings/string_view.h"
#include "common/grpc_status.h"
#include "spdlog/spdlog.h"

namespace splitd::daemon {

Authorizer::Call ServiceCall::ToAuthorize() const {
  Authorizer::Call call;
  call.service = timer_.service();
  call.method = timer_.method();
  call.token = BearerToken(*context_);
  return call;
}

void ServiceCall::Ended(const grpc::Status& status) const {
  if (!status.ok()) {
    // "AgentService.Register": the service's name without its package.
    const absl::string_view service(timer_.service());
    spdlog::debug("{}.{} from {}: {}", std::string(service.substr(service.rfind('.') + 1)),
                  timer_.method(), context_->peer(), FromGrpcStatus(status).ToString());
  }
  timer_.Record(status.error_code());
}

grpc::ServerUnaryReactor* ServiceCall::Finish(const absl::Status& status) const {
  grpc::ServerUnaryReactor* reactor = Defer();
  Complete(reactor, status);
  return reactor;
}

void ServiceCall::Complete(grpc::ServerUnaryReactor* reactor, const absl::Status& status) const {
  const grpc::Status sent = ToGrpcStatus(status);
  Ended(sent);
  reactor->Finish(sent);
}

}  // namespace splitd::daemon
