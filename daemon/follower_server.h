#ifndef SPLITD_DAEMON_FOLLOWER_SERVER_H_
#define SPLITD_DAEMON_FOLLOWER_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"

namespace splitd::daemon {

// What a daemon replica that does not lead serves on its port: the health service, "" SERVING
// (the process is alive) and splitd.v1.Leader NOT_SERVING (common/daemon_replicas.h), and for
// every other method UNAVAILABLE, with the leading replica's address in the "splitd-leader"
// metadata and the message. Thread-safe.
class FollowerServer {
 public:
  // Listens on `listen` (port 0: any free port). `leader_address` is asked on every call.
  static absl::StatusOr<std::unique_ptr<FollowerServer>> Start(
      const std::string& listen, std::shared_ptr<grpc::ServerCredentials> credentials,
      std::function<std::string()> leader_address);
  ~FollowerServer();

  // The port it got.
  int port() const { return port_; }
  // Stops at once; calls in flight (health watches) are cancelled.
  void Shutdown();

 private:
  class Refusal;
  class Service;
  FollowerServer() = default;

  int port_ = 0;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  bool shut_down_ = false;
};

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_FOLLOWER_SERVER_H_
