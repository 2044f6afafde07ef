#include "common/grpc_logging.h"

#include "grpc/support/log.h"
#include "spdlog/spdlog.h"

namespace splitd {
namespace {

void ToSpdlog(gpr_log_func_args* args) {
  const char* message = args->message != nullptr ? args->message : "";
  switch (args->severity) {
    case GPR_LOG_SEVERITY_ERROR:
      spdlog::warn("grpc: {}", message);
      break;
    case GPR_LOG_SEVERITY_INFO:
      spdlog::debug("grpc: {}", message);
      break;
    default:
      spdlog::trace("grpc: {}", message);
      break;
  }
}

void Discard(gpr_log_func_args*) {}

}  // namespace

void RouteGrpcLogsToSpdlog() { gpr_set_log_function(ToSpdlog); }

void DiscardGrpcLogs() { gpr_set_log_function(Discard); }

}  // namespace splitd
