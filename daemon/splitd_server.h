#ifndef SPLITD_DAEMON_SPLITD_SERVER_H_
#define SPLITD_DAEMON_SPLITD_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/metrics_http.h"
#include "daemon/agent_service.h"
#include "daemon/authorizer.h"
#include "daemon/control_service.h"
#include "daemon/coordinator.h"
#include "daemon/event_log.h"
#include "daemon/event_metrics.h"
#include "daemon/rendezvous_spaces.h"
#include "daemon/rpc_metrics.h"
#include "daemon/store/state_store.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"

namespace splitd::daemon {

// How a daemon is started (filled from flags by main.cc, or by tests).
struct ServerConfig {
  // HOST:PORT to listen on; port 0 picks a free port.
  std::string listen = "127.0.0.1:7070";
  // When set, "host:port" of the bound address is written there (atomically) once serving.
  std::string port_file;
  // Directory of the durable state (daemon/store/log_state_store.h); created when missing.
  // Empty: state lives in memory only and is lost with the process.
  std::string data_dir;
  // Transport security of the gRPC port (common/tls_credentials.h builds it from the flags).
  // Null: plaintext.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // Token files (daemon/authorizer.h). Without admin_token_file the ControlService is open to
  // every caller and clusters need no join token.
  std::string admin_token_file;
  std::string observer_token_file;
  // Largest request accepted; larger ones get RESOURCE_EXHAUSTED.
  int max_receive_message_bytes = 16 << 20;
  // HOST:PORT to serve Prometheus metrics on over HTTP (GET /metrics); port 0 picks a free
  // port. Empty: no metrics endpoint.
  std::string metrics_listen;
  // When set, "host:port" of the bound metrics address is written there (atomically) once
  // serving.
  std::string metrics_port_file;
  // How long in-flight calls may run on shutdown before they are cancelled.
  absl::Duration shutdown_grace = absl::Seconds(5);
  // How often leases are checked (failure detection is at most this much later than a lease).
  absl::Duration lease_check_interval = absl::Milliseconds(50);
  // A replica that leads (--etcd_endpoints): opens its store (instead of data_dir's log or
  // memory; data_dir then holds the audit log only), the term its answers carry
  // (common/daemon_replicas.h), and whether it still leads: every call is refused UNAVAILABLE
  // once may_serve says no.
  std::function<absl::StatusOr<std::unique_ptr<store::StateStore>>()> open_store;
  int64_t term = 0;
  std::function<absl::Status()> may_serve;
};

// The composition root of the daemon: store, coordinator, rendezvous spaces, gRPC services
// (ControlService, AgentService, health, reflection), the server and its metrics (a registry fed
// by the services' call reports, a timing store decorator and the event stream, served over HTTP
// when metrics_listen is set). Health reports NOT_SERVING until state is recovered and again from
// the moment shutdown starts.
//
// Threading: Start, Shutdown and address are safe to call from any thread; Shutdown is
// idempotent.
class SplitdServer {
 public:
  // Builds everything and returns once the daemon serves. `clock` must outlive the server.
  static absl::StatusOr<std::unique_ptr<SplitdServer>> Start(const ServerConfig& config,
                                                             const Clock* clock);
  ~SplitdServer();

  // The bound address as "host:port".
  const std::string& address() const { return address_; }
  // The bound metrics address as "host:port"; empty without metrics_listen.
  const std::string& metrics_address() const { return metrics_address_; }

  // Marks health NOT_SERVING, stops taking calls and waits up to the grace period for calls in
  // flight; then cancels what is left.
  void Shutdown();

 private:
  SplitdServer() = default;

  // The metrics registry, store, event log, coordinator, authorizer, call metrics and rendezvous
  // spaces.
  absl::Status BuildState(const ServerConfig& config, const Clock* clock);
  // The two services, the AgentService told of the Coordinator's events.
  void BuildServices();
  // Starts the gRPC server on config.listen; `bound_port` is the port it got.
  absl::Status Listen(const ServerConfig& config, int* bound_port);
  // Serves GET /metrics on host:port and writes config.metrics_port_file.
  absl::Status ServeMetrics(const ServerConfig& config, const std::string& host, int port);

  std::string address_;
  std::string metrics_address_;
  absl::Duration shutdown_grace_;
  // First: everything below records into it.
  std::unique_ptr<metrics::Registry> registry_;
  std::unique_ptr<store::StateStore> store_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<EventMetrics> event_metrics_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<Authorizer> authorizer_;
  std::unique_ptr<RpcMetrics> rpc_metrics_;  // with metrics_listen only
  std::unique_ptr<ControlService> control_service_;
  std::unique_ptr<RendezvousSpaces> spaces_;
  std::unique_ptr<AgentService> agent_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<metrics::MetricsHttpServer> metrics_http_;
  bool shut_down_ = false;
  absl::Notification stop_ticking_;
  std::thread ticker_;  // Coordinator::Tick every lease_check_interval
};

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_SPLITD_SERVER_H_
