// splitd: the daemon. Parses flags into a ServerConfig, starts the server, and shuts it down
// gracefully on SIGTERM or SIGINT.

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/version.h"
#include "daemon/splitd_server.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7070", "HOST:PORT to serve gRPC on (port 0: any free)");
ABSL_FLAG(std::string, port_file, "", "write the bound host:port here once serving");
ABSL_FLAG(std::string, data_dir, "", "directory for daemon state (created when missing)");
ABSL_FLAG(std::string, log_level, "info", "trace|debug|info|warn|error|off");
ABSL_FLAG(std::string, log_format, "text", "text|json");
ABSL_FLAG(int, shutdown_grace_ms, 5000, "how long calls in flight may finish on shutdown");

int main(int argc, char** argv) {
  absl::FlagsUsageConfig usage;
  usage.version_string = [] { return std::string("splitd ") + splitd::kVersion + "\n"; };
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage("splitd: coordinates how a distributed job forms its groups");
  absl::ParseCommandLine(argc, argv);

  absl::Status logging = splitd::SetupLogging("splitd", absl::GetFlag(FLAGS_log_level),
                                              absl::GetFlag(FLAGS_log_format));
  if (!logging.ok()) {
    std::fprintf(stderr, "splitd: %s\n", std::string(logging.message()).c_str());
    return 2;
  }

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
  config.shutdown_grace = absl::Milliseconds(absl::GetFlag(FLAGS_shutdown_grace_ms));

  splitd::RealClock clock;
  auto server = splitd::daemon::SplitdServer::Start(config, &clock);
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
