#include "daemon/splitd_server.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/daemon_replicas.h"
#include "common/posix_file.h"
#include "common/status_macros.h"
#include "daemon/daemon_metrics.h"
#include "daemon/rpc_metrics.h"
#include "daemon/store/log_state_store.h"
#include "daemon/store/memory_state_store.h"
#include "daemon/store/timed_state_store.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "spdlog/spdlog.h"

namespace splitd::daemon {
namespace {

// Splits "host:port" (or "[v6]:port") at its last colon; `flag` names it in errors.
absl::Status SplitListen(const char* flag, const std::string& listen, std::string* host,
                         int* port) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " must be HOST:PORT, got \"", listen, "\""));
  }
  *host = listen.substr(0, colon);
  if (!absl::SimpleAtoi(listen.substr(colon + 1), port) || *port < 0 || *port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " port must be 0..65535, got \"", listen.substr(colon + 1), "\""));
  }
  return absl::OkStatus();
}

// Creates `data_dir` when it is set and missing.
absl::Status MakeDataDir(const std::string& data_dir) {
  if (data_dir.empty()) return absl::OkStatus();
  std::error_code error;
  // The state holds members' session tokens: a directory the daemon makes is its own only.
  if (std::filesystem::create_directories(data_dir, error)) {
    std::filesystem::permissions(data_dir, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, error);
  }
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("--data_dir ", data_dir, " cannot be created: ", error.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SplitdServer>> SplitdServer::Start(const ServerConfig& config,
                                                                  const Clock* clock) {
  std::string host;
  int port = 0;
  RETURN_IF_ERROR(SplitListen("listen", config.listen, &host, &port));
  std::string metrics_host;
  int metrics_port = 0;
  if (!config.metrics_listen.empty()) {
    RETURN_IF_ERROR(
        SplitListen("metrics_listen", config.metrics_listen, &metrics_host, &metrics_port));
  }
  RETURN_IF_ERROR(MakeDataDir(config.data_dir));

  std::unique_ptr<SplitdServer> server(new SplitdServer());
  server->shutdown_grace_ = config.shutdown_grace;
  RETURN_IF_ERROR(server->BuildState(config, clock));
  server->BuildServices();
  int bound_port = 0;
  RETURN_IF_ERROR(server->Listen(config, &bound_port));
  grpc::HealthCheckServiceInterface* health = server->server_->GetHealthCheckService();
  health->SetServingStatus(false);

  RETURN_IF_ERROR(server->coordinator_->Recover());
  for (const Coordinator::RecoveredSpace& space : server->coordinator_->TakeRecoveredSpaces()) {
    server->spaces_->Restore(space.cluster, space.epoch, space.keys);
  }

  SplitdServer* self = server.get();
  const absl::Duration interval = config.lease_check_interval;
  server->ticker_ = std::thread([self, interval] {
    while (!self->stop_ticking_.WaitForNotificationWithTimeout(interval)) {
      self->coordinator_->Tick();
    }
  });
  server->address_ = absl::StrCat(host, ":", bound_port);
  AddDaemonMetrics(server->registry_.get(), server->coordinator_.get(), server->spaces_.get());
  if (!config.metrics_listen.empty()) {
    RETURN_IF_ERROR(server->ServeMetrics(config, metrics_host, metrics_port));
  }
  health->SetServingStatus(true);
  // This daemon leads: it is the only one, or its replicas elected it.
  health->SetServingStatus(kLeaderHealthService, true);
  if (!config.port_file.empty()) {
    RETURN_IF_ERROR(WriteFileAtomically(config.port_file, server->address_ + "\n"));
  }
  spdlog::info("serving on {} (state {})", server->address_,
               config.open_store         ? absl::StrCat("in etcd, term ", config.term)
               : config.data_dir.empty() ? std::string("in memory only")
                                         : absl::StrCat("durable in ", config.data_dir));
  return server;
}

absl::Status SplitdServer::BuildState(const ServerConfig& config, const Clock* clock) {
  registry_ = std::make_unique<metrics::Registry>();
  std::unique_ptr<store::StateStore> state_store;
  if (config.open_store) {
    ASSIGN_OR_RETURN(state_store, config.open_store());
  } else if (config.data_dir.empty()) {
    state_store = std::make_unique<store::MemoryStateStore>();
  } else {
    ASSIGN_OR_RETURN(state_store, store::LogStateStore::Open(config.data_dir));
  }
  store_ = std::make_unique<store::TimedStateStore>(std::move(state_store), registry_.get());
  events_ = std::make_unique<EventLog>(
      4096, config.data_dir.empty()
                ? std::string()
                : (std::filesystem::path(config.data_dir) / "audit.jsonl").string());
  event_metrics_ = std::make_unique<EventMetrics>(events_.get(), registry_.get());
  coordinator_ = std::make_unique<Coordinator>(store_.get(), clock, events_.get());
  Authorizer::Options auth;
  auth.admin_token_file = config.admin_token_file;
  auth.observer_token_file = config.observer_token_file;
  auth.may_serve = config.may_serve;
  ASSIGN_OR_RETURN(authorizer_, Authorizer::Create(auth, clock, coordinator_.get()));
  // Calls are counted only when the counts are served.
  if (!config.metrics_listen.empty()) {
    rpc_metrics_ = std::make_unique<RpcMetrics>(registry_.get());
  }
  Coordinator* coordinator = coordinator_.get();
  spaces_ = std::make_unique<RendezvousSpaces>(
      RendezvousLimits{},
      [coordinator](const std::string& cluster, int64_t epoch, const std::string& key,
                    const std::string& value) {
        return coordinator->PersistRendezvousKey(cluster, epoch, key, value);
      },
      [coordinator](const std::string& cluster, int64_t epoch, const std::string& key) {
        return coordinator->PersistRendezvousKeyDeletion(cluster, epoch, key);
      },
      clock);
  return absl::OkStatus();
}

void SplitdServer::BuildServices() {
  control_service_ = std::make_unique<ControlService>(coordinator_.get(), authorizer_.get(),
                                                      rpc_metrics_.get(), spaces_.get());
  agent_service_ = std::make_unique<AgentService>(coordinator_.get(), spaces_.get(),
                                                  authorizer_.get(), rpc_metrics_.get());
  AgentService* agent_service = agent_service_.get();
  coordinator_->SetEventListener(
      [agent_service](const ClusterEvent& event) { agent_service->OnClusterEvent(event); });
}

absl::Status SplitdServer::Listen(const ServerConfig& config, int* bound_port) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(
      config.listen,
      config.credentials != nullptr ? config.credentials : grpc::InsecureServerCredentials(),
      bound_port);
  builder.SetMaxReceiveMessageSize(config.max_receive_message_bytes);
  PermitClientPings(&builder);
  builder.SetMaxSendMessageSize(-1);
  builder.RegisterService(control_service_.get());
  builder.RegisterService(agent_service_.get());
  if (config.term > 0) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> stamps;
    stamps.push_back(MakeTermStampFactory(config.term));
    builder.experimental().SetInterceptorCreators(std::move(stamps));
  }
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || *bound_port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", config.listen));
  }
  return absl::OkStatus();
}

absl::Status SplitdServer::ServeMetrics(const ServerConfig& config, const std::string& host,
                                        int port) {
  ASSIGN_OR_RETURN(metrics_http_, metrics::MetricsHttpServer::Start(host, port, registry_.get()));
  metrics_address_ = absl::StrCat(host, ":", metrics_http_->port());
  if (!config.metrics_port_file.empty()) {
    RETURN_IF_ERROR(WriteFileAtomically(config.metrics_port_file, metrics_address_ + "\n"));
  }
  spdlog::info("serving metrics on http://{}/metrics", metrics_address_);
  return absl::OkStatus();
}

SplitdServer::~SplitdServer() { Shutdown(); }

void SplitdServer::Shutdown() {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  spdlog::info("shutting down (grace {})", absl::FormatDuration(shutdown_grace_));
  server_->GetHealthCheckService()->SetServingStatus(false);
  if (metrics_http_ != nullptr) metrics_http_->Shutdown();
  if (ticker_.joinable()) {
    stop_ticking_.Notify();
    ticker_.join();
  }
  agent_service_->Shutdown();
  control_service_->Shutdown();
  server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(shutdown_grace_));
  server_->Wait();
  spdlog::info("stopped");
}

}  // namespace splitd::daemon
