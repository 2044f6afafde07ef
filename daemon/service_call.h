#ifndef SPLITD_DAEMON_SERVICE_CALL_H_
#define SPLITD_DAEMON_SERVICE_CALL_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/authorizer.h"
#include "daemon/rpc_metrics.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"
#include "grpcpp/support/status.h"

namespace splitd::daemon {

// One call a service answers: its method, its context and when its handler started. Every call
// ends through it once: the final status goes to RpcMetrics and, unless OK, to the debug log
// with the caller's address (statuses never quote a token). Unary handlers finish with Finish or
// Reply; StreamReactor reports its stream's final status with Ended.
//
// Threading: a value, read-only after construction. The context must outlive it (gRPC keeps a
// call's context until the call's OnDone).
class ServiceCall {
 public:
  // `service` and `method` must be string literals ("splitd.v1.AgentService", "Register").
  ServiceCall(grpc::CallbackServerContext* context, RpcMetrics* metrics, const char* service,
              const char* method)
      : context_(context), timer_(metrics, service, method) {}

  grpc::CallbackServerContext* context() const { return context_; }

  // What the Authorizer decides on: this call's method and bearer token. Callers add what the
  // call acts for (Authorizer::Call).
  Authorizer::Call ToAuthorize() const;

  // Books `status` as the call's final status: recorded, and logged at debug level unless OK.
  void Ended(const grpc::Status& status) const;

  // Finishes a unary call with `status`, converted once (common/grpc_status.h), and books it.
  grpc::ServerUnaryReactor* Finish(const absl::Status& status) const;

  // A unary call answered later, from any thread: the handler returns Defer's reactor (asked for
  // once) and Complete finishes it once, booked as Finish books it.
  grpc::ServerUnaryReactor* Defer() const { return context_->DefaultReactor(); }
  void Complete(grpc::ServerUnaryReactor* reactor, const absl::Status& status) const;

  // Finishes a unary call with `result`'s status, moving its value into `response` when OK.
  template <typename Response>
  grpc::ServerUnaryReactor* Reply(absl::StatusOr<Response> result, Response* response) const {
    if (result.ok()) *response = *std::move(result);
    return Finish(result.status());
  }

 private:
  grpc::CallbackServerContext* const context_;
  const RpcTimer timer_;
};

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_SERVICE_CALL_H_
