#include "daemon/follower_server.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/daemon_replicas.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/server_callback.h"

namespace splitd::daemon {

// One refused call: initial metadata naming the leader, then UNAVAILABLE.
class FollowerServer::Refusal final : public grpc::ServerGenericBidiReactor {
 public:
  Refusal(grpc::GenericCallbackServerContext* context, const std::string& leader) {
    if (!leader.empty()) context->AddInitialMetadata(kLeaderMetadata, leader);
    Finish(grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        leader.empty()
            ? std::string("this splitd replica does not lead, and no replica leads right now")
            : absl::StrCat("this splitd replica does not lead; the leader is at ", leader)));
  }
  void OnDone() override { delete this; }
};

class FollowerServer::Service final : public grpc::CallbackGenericService {
 public:
  explicit Service(std::function<std::string()> leader_address)
      : leader_address_(std::move(leader_address)) {}
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override {
    return new Refusal(context, leader_address_ ? leader_address_() : std::string());
  }

 private:
  std::function<std::string()> leader_address_;
};

absl::StatusOr<std::unique_ptr<FollowerServer>> FollowerServer::Start(
    const std::string& listen, std::shared_ptr<grpc::ServerCredentials> credentials,
    std::function<std::string()> leader_address) {
  std::unique_ptr<FollowerServer> server(new FollowerServer());
  server->service_ = std::make_unique<Service>(std::move(leader_address));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen,
                           credentials != nullptr ? credentials : grpc::InsecureServerCredentials(),
                           &server->port_);
  builder.RegisterCallbackGenericService(server->service_.get());
  PermitClientPings(&builder);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen));
  }
  grpc::HealthCheckServiceInterface* health = server->server_->GetHealthCheckService();
  health->SetServingStatus("", true);
  health->SetServingStatus(kLeaderHealthService, false);
  return server;
}

FollowerServer::~FollowerServer() { Shutdown(); }

void FollowerServer::Shutdown() {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  server_->Wait();
}

}  // namespace splitd::daemon
