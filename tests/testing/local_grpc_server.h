#ifndef SPLITD_TESTS_TESTING_LOCAL_GRPC_SERVER_H_
#define SPLITD_TESTS_TESTING_LOCAL_GRPC_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/server.h"
#include "gtest/gtest.h"

namespace splitd::testing {

// An in-process plaintext gRPC server on 127.0.0.1 with a port the kernel picked.
struct LocalGrpcServer {
  std::unique_ptr<grpc::Server> server;
  std::string address;  // "127.0.0.1:PORT"
};

// Starts a server with `services` registered (they must outlive it); UNAVAILABLE when it cannot
// bind.
absl::StatusOr<LocalGrpcServer> StartLocalGrpcServer(const std::vector<grpc::Service*>& services);

// A test fixture that serves Services() on a LocalGrpcServer at `address_` from SetUp on, and
// shuts it down in TearDown at once (calls still in flight are cancelled). A fixture that
// overrides TearDown calls this one last.
class LocalGrpcServerTest : public ::testing::Test {
 protected:
  // The services to serve; they must outlive the test.
  virtual std::vector<grpc::Service*> Services() = 0;

  void SetUp() override;
  void TearDown() override;

  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace splitd::testing

#endif  // SPLITD_TESTS_TESTING_LOCAL_GRPC_SERVER_H_
