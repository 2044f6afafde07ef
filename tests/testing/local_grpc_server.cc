#include "tests/testing/local_grpc_server.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace splitd::testing {

absl::StatusOr<LocalGrpcServer> StartLocalGrpcServer(const std::vector<grpc::Service*>& services) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  for (grpc::Service* service : services) builder.RegisterService(service);
  LocalGrpcServer local;
  local.server = builder.BuildAndStart();
  if (local.server == nullptr || port <= 0) {
    return absl::UnavailableError("cannot start a gRPC server on 127.0.0.1:0");
  }
  local.address = absl::StrCat("127.0.0.1:", port);
  return local;
}

void LocalGrpcServerTest::SetUp() {
  absl::StatusOr<LocalGrpcServer> server = StartLocalGrpcServer(Services());
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = std::move(server->server);
  address_ = server->address;
}

void LocalGrpcServerTest::TearDown() {
  if (server_ != nullptr) server_->Shutdown(absl::ToChronoTime(absl::Now()));
}

}  // namespace splitd::testing
