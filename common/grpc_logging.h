#ifndef SPLITD_COMMON_GRPC_LOGGING_H_
#define SPLITD_COMMON_GRPC_LOGGING_H_

namespace splitd {

// Sends gRPC core's own log lines (a failed TLS handshake, for one) through spdlog, so they
// follow --log_format and --log_level: gRPC's errors become warnings (they are about a peer, not
// this process), its info debug, its debug trace. Call after SetupLogging; process-wide.
void RouteGrpcLogsToSpdlog();

// Drops gRPC core's own log lines, for a CLI whose errors are one line of its own (the reason
// travels in the call's status anyway). Process-wide.
void DiscardGrpcLogs();

}  // namespace splitd

#endif  // SPLITD_COMMON_GRPC_LOGGING_H_
