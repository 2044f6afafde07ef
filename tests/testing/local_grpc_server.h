#ifndef SPLITD_TESTS_TESTING_LOCAL_GRPC_SERVER_H_
#define SPLITD_TESTS_TESTING_LOCAL_GRPC_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/server.h"

namespace splitd::testing {

// An in-process plaintext gRPC server on 127.0.0.1 with a port the kernel picked.
struct LocalGrpcServer {
  std::unique_ptr<grpc::Server> server;
  std::string address;  // "127.0.0.1:PORT"
};

// Starts a server with `services` registered (they must outlive it); UNAVAILABLE when it cannot
// bind.
absl::StatusOr<LocalGrpcServer> StartLocalGrpcServer(const std::vector<grpc::Service*>& services);

}  // namespace splitd::testing

#endif  // SPLITD_TESTS_TESTING_LOCAL_GRPC_SERVER_H_
