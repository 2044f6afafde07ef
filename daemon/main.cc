// splitd: the daemon. Parses flags into a ServerConfig, starts the server, and shuts it down
// gracefully on SIGTERM or SIGINT.

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/grpc_logging.h"
#include "common/logging.h"
#include "common/tls_credentials.h"
#include "common/version.h"
#include "daemon/replica.h"
#include "daemon/splitd_server.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7070", "HOST:PORT to serve gRPC on (port 0: any free)");
ABSL_FLAG(std::string, port_file, "", "write the bound host:port here once serving");
ABSL_FLAG(std::string, data_dir, "", "directory for daemon state (created when missing)");
ABSL_FLAG(std::string, log_level, "info", "trace|debug|info|warn|error|off");
ABSL_FLAG(std::string, log_format, "text", "text|json");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain to serve TLS with (with --tls_key); without them the daemon "
          "serves plaintext, on a loopback --listen only unless --plaintext is given");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert (unencrypted)");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle; when set, every client must present a certificate it signed (mutual "
          "TLS)");
ABSL_FLAG(bool, plaintext, false,
          "serve without TLS on any --listen address (anyone who reaches the port can read and "
          "drive the daemon)");
ABSL_FLAG(std::string, admin_token_file, "",
          "file of admin tokens (one per line; re-read when it changes): every ControlService "
          "call then needs \"authorization: Bearer <token>\", and every cluster a join token "
          "for its agents; without it the ControlService is open to anyone who reaches the port");
ABSL_FLAG(std::string, observer_token_file, "",
          "file of observer tokens (needs --admin_token_file): read-only ControlService calls "
          "(get, list, plan, status, watch, Reconfigure dry runs)");
ABSL_FLAG(std::string, metrics_listen, "",
          "HOST:PORT to serve Prometheus metrics on over HTTP, GET /metrics (port 0: any free); "
          "empty: no metrics endpoint");
ABSL_FLAG(std::string, metrics_port_file, "",
          "write the bound metrics host:port here once serving");
ABSL_FLAG(int, shutdown_grace_ms, 5000, "how long calls in flight may finish on shutdown");
ABSL_FLAG(std::string, etcd_endpoints, "",
          "HOST:PORT,... of etcd's client URLs: run as one of several replicas that keep the "
          "state in etcd and elect one leader (docs/deploying.md); empty: one daemon with its "
          "state in --data_dir");
ABSL_FLAG(std::string, etcd_prefix, "/splitd/", "every etcd key the replicas use lies under it");
ABSL_FLAG(std::string, etcd_ca, "", "PEM CA bundle etcd's certificates chain to (TLS to etcd)");
ABSL_FLAG(std::string, etcd_cert, "", "PEM client certificate for etcd (with --etcd_key)");
ABSL_FLAG(std::string, etcd_key, "", "PEM private key of --etcd_cert");
ABSL_FLAG(std::string, etcd_user, "", "etcd user (etcd's authentication); empty: none");
ABSL_FLAG(std::string, etcd_password_file, "", "file holding --etcd_user's password");
ABSL_FLAG(std::string, advertise, "",
          "HOST:PORT clients reach this replica on (with --etcd_endpoints); default: the bound "
          "--listen address");
ABSL_FLAG(int, leader_ttl_ms, 3000,
          "TTL of the leader's etcd lease (with --etcd_endpoints): a leader that stops renewing "
          "is replaced after at most this long; at least 2000");

// Abseil as Debian builds it records the order in which every Mutex is taken, to report deadlock
// cycles: a debugging aid that cost 16% of the daemon's CPU at 100,000 members
// (docs/benchmarks.md). The lock order is checked at build time (clang -Wthread-safety) and by
// the tests, which keep the detection on.
namespace {
void IgnoreLockOrderCycles() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}
// --etcd_* flags, --advertise and --leader_ttl_ms.
absl::StatusOr<splitd::daemon::ReplicaConfig> ReplicaFromFlags(int argc, char** argv) {
  splitd::daemon::ReplicaConfig replica;
  replica.etcd.endpoints =
      absl::StrSplit(absl::GetFlag(FLAGS_etcd_endpoints), ',', absl::SkipWhitespace());
  replica.etcd.ca_file = absl::GetFlag(FLAGS_etcd_ca);
  replica.etcd.cert_file = absl::GetFlag(FLAGS_etcd_cert);
  replica.etcd.key_file = absl::GetFlag(FLAGS_etcd_key);
  replica.etcd.user = absl::GetFlag(FLAGS_etcd_user);
  if (const std::string file = absl::GetFlag(FLAGS_etcd_password_file); !file.empty()) {
    std::ifstream in(file);
    if (!in || !std::getline(in, replica.etcd.password)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--etcd_password_file ", file, " cannot be read"));
    }
  } else if (!replica.etcd.user.empty()) {
    return absl::InvalidArgumentError("--etcd_user needs --etcd_password_file");
  }
  replica.prefix = absl::GetFlag(FLAGS_etcd_prefix);
  if (replica.prefix.empty() || replica.prefix.back() != '/') {
    return absl::InvalidArgumentError("--etcd_prefix must end with \"/\"");
  }
  replica.advertise = absl::GetFlag(FLAGS_advertise);
  const int ttl_ms = absl::GetFlag(FLAGS_leader_ttl_ms);
  if (ttl_ms < 2000 || ttl_ms > 600000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--leader_ttl_ms must be 2000..600000 (etcd grants 2 s at least), got ", ttl_ms));
  }
  replica.ttl = absl::Milliseconds(ttl_ms);
  replica.argv.assign(argv, argv + argc);
  return replica;
}

// What the daemon says at start about tokens and transport security.
void WarnAboutSecurity(const splitd::daemon::ServerConfig& config,
                       const splitd::ServerSecurity& security,
                       const splitd::ServerTlsOptions& tls) {
  if (config.admin_token_file.empty()) {
    spdlog::warn(
        "no --admin_token_file: the ControlService takes calls without a token and clusters need "
        "no join token");
  } else if (security.plaintext && !splitd::IsLoopbackAddress(config.listen)) {
    spdlog::warn("tokens travel in the clear over plaintext gRPC; serve TLS to protect them");
  }
  if (security.plaintext) {
    spdlog::warn(
        "serving PLAINTEXT gRPC on {}: no authentication or encryption; give --tls_cert and "
        "--tls_key to serve TLS",
        config.listen);
  } else {
    spdlog::info("serving {} on {} (certificate {})", security.description, config.listen,
                 tls.cert_file);
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::FlagsUsageConfig usage;
  usage.version_string = [] { return std::string("splitd ") + splitd::kVersion + "\n"; };
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage("splitd: coordinates how a distributed job forms its groups");
  absl::ParseCommandLine(argc, argv);
  IgnoreLockOrderCycles();

  absl::Status logging = splitd::SetupLogging("splitd", absl::GetFlag(FLAGS_log_level),
                                              absl::GetFlag(FLAGS_log_format));
  if (!logging.ok()) {
    std::fprintf(stderr, "splitd: %s\n", std::string(logging.message()).c_str());
    return 2;
  }
  splitd::RouteGrpcLogsToSpdlog();

  // Block the stop signals in every thread (gRPC's included); this thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  splitd::daemon::ServerConfig config;
  config.listen = absl::GetFlag(FLAGS_listen);
  config.port_file = absl::GetFlag(FLAGS_port_file);
  config.data_dir = absl::GetFlag(FLAGS_data_dir);
  config.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  config.metrics_port_file = absl::GetFlag(FLAGS_metrics_port_file);
  config.shutdown_grace = absl::Milliseconds(absl::GetFlag(FLAGS_shutdown_grace_ms));
  splitd::ServerTlsOptions tls;
  tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  tls.key_file = absl::GetFlag(FLAGS_tls_key);
  tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  tls.plaintext = absl::GetFlag(FLAGS_plaintext);
  absl::StatusOr<splitd::ServerSecurity> security = splitd::MakeServerSecurity(tls, config.listen);
  if (!security.ok()) {
    spdlog::error("{}", std::string(security.status().message()));
    return 2;
  }
  config.credentials = security->credentials;
  config.admin_token_file = absl::GetFlag(FLAGS_admin_token_file);
  config.observer_token_file = absl::GetFlag(FLAGS_observer_token_file);
  WarnAboutSecurity(config, *security, tls);

  splitd::RealClock clock;
  if (!absl::GetFlag(FLAGS_etcd_endpoints).empty()) {
    absl::StatusOr<splitd::daemon::ReplicaConfig> replica = ReplicaFromFlags(argc, argv);
    if (!replica.ok()) {
      spdlog::error("{}", std::string(replica.status().message()));
      return 2;
    }
    return splitd::daemon::RunReplica(config, *replica, &clock, stop_signals);
  }
  auto server = splitd::daemon::SplitdServer::Start(config, &clock);
  if (!server.ok() && server.status().code() == absl::StatusCode::kInvalidArgument) {
    spdlog::error("{}", std::string(server.status().message()));
    return 2;
  }
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().ToString());
    return 1;
  }

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  spdlog::info("received {}", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Shutdown();
  return 0;
}
