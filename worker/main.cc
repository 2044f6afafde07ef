// splitd-agent: the worker agent. Parses flags into AgentOptions, connects to the daemon, runs
// the agent's lifecycle and stops it cleanly on SIGTERM or SIGINT.

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/bearer_token.h"
#include "common/daemon_replicas.h"
#include "common/grpc_logging.h"
#include "common/logging.h"
#include "common/tls_credentials.h"
#include "common/version.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "spdlog/spdlog.h"
#include "worker/agent.h"
#include "worker/default_group_builders.h"
#include "worker/test_only_flags.h"

ABSL_FLAG(std::string, daemon, "",
          "HOST:PORT of the splitd daemon (default: $SPLITD_ADDR, else 127.0.0.1:7070)");
ABSL_FLAG(std::string, cluster, "", "cluster to join (required)");
ABSL_FLAG(std::string, node, "",
          "node name; ranks are assigned by node, then local index (default: $NODE_NAME, else "
          "the host name)");
ABSL_FLAG(std::string, pod, "",
          "pod or process name (default: $POD_NAME, else $HOSTNAME, else the host name)");
ABSL_FLAG(int64_t, local_index, 0, "local device index on the node; >= 0");
ABSL_FLAG(int64_t, device, -1,
          "GPU index this agent's device communicators bind to; -1 (default) uses --local_index. "
          "Set 0 when every pod sees only its own GPU");
ABSL_FLAG(std::string, host, "",
          "address this agent's transports listen on and peers reach (default: $POD_IP, else "
          "127.0.0.1)");
ABSL_FLAG(std::string, plan_file, "",
          "write this rank's plan here (atomically) once its groups are ready or failed");
ABSL_FLAG(std::string, workload_socket, "",
          "Unix socket the workload endpoint serves on (docs/workload-endpoint.md); default: "
          "--plan_file with its extension replaced by .sock; \"none\" turns it off");
ABSL_FLAG(std::string, workload_socket_mode, "0600",
          "permission bits of the workload socket, octal: 0600 (the agent's user only) or 0660 "
          "(also its group)");
ABSL_FLAG(int64_t, timeout_ms, 60000, "bound on every bootstrap step and collective, ms; > 0");
ABSL_FLAG(std::string, nccl_library, "libnccl.so.2",
          "NCCL to load at run time for cuda:nccl groups (a dlopen name or path); empty turns "
          "NCCL off");
ABSL_FLAG(std::string, cudart_library, "",
          "CUDA runtime to load (default: the first of libcudart.so.13, .12, libcudart.so)");
ABSL_FLAG(bool, nccl_nonblocking, false,
          "create NCCL communicators non-blocking and poll them against --timeout_ms, aborting "
          "on timeout");
ABSL_FLAG(bool, nccl_eager_connect, false,
          "connect NCCL peers when a communicator is created (NCCL_RUNTIME_CONNECT=0) instead "
          "of at its first collective");
ABSL_FLAG(bool, nccl_serial_validation, false,
          "validate the groups one after another instead of side by side");
ABSL_FLAG(bool, hold_communicators, false,
          "keep GPU communicators after validation (by default they are released so the "
          "workload owns the GPU memory)");
ABSL_FLAG(bool, plaintext, false,
          "connect without TLS (default: $SPLITD_PLAINTEXT=1; without either, plaintext only "
          "to a loopback --daemon address, TLS elsewhere)");
ABSL_FLAG(bool, tls, false,
          "connect with TLS even to a loopback address (implied by any other --tls_* flag)");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA bundle the daemon's certificate must chain to (default: $SPLITD_TLS_CA, else "
          "the system's roots)");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM client certificate chain for mutual TLS, with --tls_key (default: "
          "$SPLITD_TLS_CERT)");
ABSL_FLAG(std::string, tls_key, "",
          "PEM private key of --tls_cert, unencrypted (default: $SPLITD_TLS_KEY)");
ABSL_FLAG(std::string, tls_server_name, "",
          "name to verify the daemon's certificate against instead of the --daemon host "
          "(default: $SPLITD_TLS_SERVER_NAME)");
ABSL_FLAG(std::string, join_token_file, "",
          "file holding the cluster's join token, sent as \"authorization: Bearer\" (default: "
          "$SPLITD_JOIN_TOKEN_FILE); needed when the cluster was applied with one");
ABSL_FLAG(std::string, log_level, "info", "trace|debug|info|warn|error|off");
ABSL_FLAG(std::string, log_format, "text", "text|json");

namespace {

constexpr char kProgram[] = "splitd-agent";

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "localhost";
  return name;
}

// The first non-empty of `values`.
template <typename... T>
std::string FirstOf(const T&... values) {
  std::string result;
  ((result.empty() ? (void)(result = values) : (void)0), ...);
  return result;
}

// --plan_file with its extension (if any) replaced by ".sock".
std::string SocketBesidePlanFile(const std::string& plan_file) {
  const size_t slash = plan_file.rfind('/');
  const size_t dot = plan_file.rfind('.');
  const bool has_extension =
      dot != std::string::npos && (slash == std::string::npos || dot > slash + 1);
  return absl::StrCat(has_extension ? plan_file.substr(0, dot) : plan_file, ".sock");
}

absl::Status WorkloadSocketOptions(splitd::worker::AgentOptions* options) {
  const std::string socket = absl::GetFlag(FLAGS_workload_socket);
  if (socket == "none") {
    options->workload_socket.clear();
  } else if (!socket.empty()) {
    options->workload_socket = socket;
  } else if (!options->plan_file.empty()) {
    options->workload_socket = SocketBesidePlanFile(options->plan_file);
  }
  const std::string mode = absl::GetFlag(FLAGS_workload_socket_mode);
  char* end = nullptr;
  const unsigned long bits = std::strtoul(mode.c_str(), &end, 8);
  if (mode.empty() || end == nullptr || *end != '\0' || bits > 0777 || (bits & 0600) != 0600) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--workload_socket_mode must be octal permission bits with owner read and write (0600, "
        "0660, ...), got \"",
        mode, "\""));
  }
  options->workload_socket_mode = static_cast<unsigned>(bits);
  return absl::OkStatus();
}

bool IsOurFlag(const absl::CommandLineFlag& flag) {
  const std::string file = flag.Filename();
  return absl::EndsWith(file, "worker/main.cc") ||
         absl::EndsWith(file, "worker/test_only_flags.cc");
}

// Parses argv into the flags defined by this binary. absl::ParseCommandLine exits with 1 on a
// bad flag; the agent's contract is exit code 2 with one line, so only the help and version
// flags are left to Abseil.
absl::Status ParseFlags(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") {
      if (i + 1 < argc)
        return absl::InvalidArgumentError(
            absl::StrCat("unexpected argument \"", argv[i + 1], "\""));
      break;
    }
    if (!absl::ConsumePrefix(&arg, "--") && !absl::ConsumePrefix(&arg, "-")) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument \"", arg, "\""));
    }
    const size_t equals = arg.find('=');
    std::string name(arg.substr(0, equals));
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    // A boolean flag stands alone: --flag is true, --noflag false.
    bool negated = false;
    if (flag == nullptr && absl::StartsWith(name, "no") && equals == absl::string_view::npos) {
      absl::CommandLineFlag* positive = absl::FindCommandLineFlag(name.substr(2));
      if (positive != nullptr && positive->IsOfType<bool>()) {
        flag = positive;
        negated = true;
        name = name.substr(2);
      }
    }
    if (flag == nullptr || !IsOurFlag(*flag)) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", arg.substr(0, equals)));
    }
    std::string value;
    if (negated) {
      value = "false";
    } else if (equals != absl::string_view::npos) {
      value = std::string(arg.substr(equals + 1));
    } else if (flag->IsOfType<bool>()) {
      value = "true";
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, ": ", error));
    }
  }
  return absl::OkStatus();
}

bool AsksForHelpOrVersion(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (!absl::ConsumePrefix(&arg, "--") && !absl::ConsumePrefix(&arg, "-")) continue;
    arg = arg.substr(0, arg.find('='));
    if (arg == "help" || arg == "helpfull" || arg == "helpshort" || arg == "helppackage" ||
        arg == "version" || arg == "only_check_args") {
      return true;
    }
  }
  return false;
}

// The TLS flags, with the environment's defaults (common/tls_credentials.h).
splitd::ClientTlsOptions TlsOptions() {
  splitd::ClientTlsOptions tls;
  tls.plaintext = absl::GetFlag(FLAGS_plaintext);
  tls.tls = absl::GetFlag(FLAGS_tls);
  tls.ca_file = absl::GetFlag(FLAGS_tls_ca);
  tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  tls.key_file = absl::GetFlag(FLAGS_tls_key);
  tls.server_name = absl::GetFlag(FLAGS_tls_server_name);
  return splitd::WithEnvironmentDefaults(tls);
}

// Flags → options and the test-only faults; INVALID_ARGUMENT naming the flag on a bad value.
absl::Status BuildOptions(splitd::worker::AgentOptions* options,
                          splitd::worker::FaultInjection* faults, std::string* daemon) {
  options->cluster = absl::GetFlag(FLAGS_cluster);
  if (options->cluster.empty()) return absl::InvalidArgumentError("--cluster is required");
  *daemon = FirstOf(absl::GetFlag(FLAGS_daemon), Env("SPLITD_ADDR"), std::string("127.0.0.1:7070"));
  options->node = FirstOf(absl::GetFlag(FLAGS_node), Env("NODE_NAME"), HostName());
  options->pod = FirstOf(absl::GetFlag(FLAGS_pod), Env("POD_NAME"), Env("HOSTNAME"), HostName());
  options->host = FirstOf(absl::GetFlag(FLAGS_host), Env("POD_IP"), std::string("127.0.0.1"));
  options->local_index = absl::GetFlag(FLAGS_local_index);
  if (options->local_index < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--local_index must be >= 0, got ", options->local_index));
  }
  options->device_index = absl::GetFlag(FLAGS_device);
  if (options->device_index < -1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--device must be >= 0 (or -1 for --local_index), got ", options->device_index));
  }
  if (options->device_index < 0) options->device_index = options->local_index;
  const int64_t timeout_ms = absl::GetFlag(FLAGS_timeout_ms);
  if (timeout_ms <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("--timeout_ms must be > 0, got ", timeout_ms));
  }
  options->timeout = absl::Milliseconds(timeout_ms);
  options->plan_file = absl::GetFlag(FLAGS_plan_file);
  if (absl::Status socket = WorkloadSocketOptions(options); !socket.ok()) return socket;
  absl::StatusOr<splitd::worker::FaultInjection> injected =
      splitd::worker::FaultInjectionFromFlags();
  if (!injected.ok()) return injected.status();
  *faults = *injected;
  return absl::OkStatus();
}

// The version string and which flags --help lists.
void SetUsage() {
  absl::FlagsUsageConfig usage;
  usage.version_string = [] { return std::string(kProgram) + " " + splitd::kVersion + "\n"; };
  // --help lists this file's flags (Abseil would look for <program>.cc).
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "worker/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(
      "splitd-agent --cluster NAME [--daemon HOST:PORT]: joins a splitd cluster, forms and "
      "validates this rank's communication groups");
}

// The backends this process can form, from the NCCL flags; `device_index` is the GPU to prepare.
splitd::worker::Backends FindBackends(int64_t device_index) {
  splitd::worker::BackendOptions backend_options;
  backend_options.try_nccl = !absl::GetFlag(FLAGS_nccl_library).empty();
  backend_options.nccl_library.nccl_path = absl::GetFlag(FLAGS_nccl_library);
  if (!absl::GetFlag(FLAGS_cudart_library).empty()) {
    backend_options.nccl_library.cudart_paths = {absl::GetFlag(FLAGS_cudart_library)};
  }
  backend_options.nccl_nonblocking = absl::GetFlag(FLAGS_nccl_nonblocking);
  backend_options.nccl_eager_connect = absl::GetFlag(FLAGS_nccl_eager_connect);
  backend_options.nccl_serial_validation = absl::GetFlag(FLAGS_nccl_serial_validation);
  backend_options.warm_device = static_cast<int>(device_index);
  return splitd::worker::DefaultBackends(backend_options);
}

// How the agent reaches the daemon: security, target (one address, or the replicas) and token.
struct Connection {
  splitd::ClientSecurity security;
  grpc::ChannelArguments args;
  std::string target;
  std::string join_token;
};

absl::StatusOr<Connection> ConnectionTo(const std::string& daemon) {
  Connection connection;
  absl::StatusOr<splitd::ClientSecurity> security =
      splitd::MakeClientSecurity(TlsOptions(), splitd::FirstAddress(daemon), &connection.args);
  if (!security.ok()) return security.status();
  connection.security = *std::move(security);
  absl::StatusOr<bool> replicated =
      splitd::ReplicatedTarget(daemon, &connection.target, &connection.args);
  if (!replicated.ok()) return replicated.status();
  absl::StatusOr<std::string> token = splitd::ReadClientToken(
      absl::GetFlag(FLAGS_join_token_file), "SPLITD_JOIN_TOKEN_FILE", "join_token_file");
  if (!token.ok()) return token.status();
  connection.join_token = *std::move(token);
  return connection;
}

// The channel to the daemon, or to its replicas: every answer of a replica that no longer leads
// (a lower term than one seen before) is taken as UNAVAILABLE.
std::shared_ptr<grpc::Channel> DaemonChannel(const std::string& target,
                                             std::shared_ptr<grpc::ChannelCredentials> credentials,
                                             const grpc::ChannelArguments& args,
                                             const std::string& join_token,
                                             std::shared_ptr<splitd::TermWatermark> terms) {
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> checks;
  checks.push_back(splitd::MakeTermCheckFactory(std::move(terms)));
  return splitd::CreateChannelWithToken(target, credentials, args, join_token, std::move(checks));
}

}  // namespace

int main(int argc, char** argv) {
  SetUsage();
  if (AsksForHelpOrVersion(argc, argv)) {
    absl::ParseCommandLine(argc, argv);  // prints and exits
    return 0;
  }

  // Block the stop signals in every thread (gRPC's and the agent's included) before anything
  // can start one (building the channel credentials starts gRPC's); a dedicated thread waits
  // for them and stops the agent.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  splitd::worker::AgentOptions options;
  splitd::worker::FaultInjection faults;
  std::string daemon;
  absl::StatusOr<Connection> connection;
  absl::Status parsed = ParseFlags(argc, argv);
  if (parsed.ok()) parsed = BuildOptions(&options, &faults, &daemon);
  if (parsed.ok()) {
    connection = ConnectionTo(daemon);
    parsed = connection.status();
  }
  if (parsed.ok()) {
    parsed = splitd::SetupLogging(kProgram, absl::GetFlag(FLAGS_log_level),
                                  absl::GetFlag(FLAGS_log_format));
  }
  if (!parsed.ok()) {
    std::fprintf(stderr, "%s: %s\n", kProgram, std::string(parsed.message()).c_str());
    return 2;
  }
  splitd::RouteGrpcLogsToSpdlog();

  spdlog::info("{} {} connecting to {} over {}", kProgram, splitd::kVersion, daemon,
               connection->security.plaintext ? "plaintext" : "TLS");
  if (connection->security.plaintext && !splitd::IsLoopbackAddress(splitd::FirstAddress(daemon))) {
    spdlog::warn("connecting to {} in PLAINTEXT: the traffic can be read and altered on the way",
                 daemon);
  }
  splitd::worker::Backends backends = FindBackends(options.device_index);
  options.device_type = backends.device_type;
  options.nccl_version = backends.nccl_version;
  options.device_count = backends.device_count;
  options.unavailable_backends = backends.unavailable;
  options.hold_device_communicators = absl::GetFlag(FLAGS_hold_communicators);
  options.terms = std::make_shared<splitd::TermWatermark>();

  splitd::worker::Agent agent(
      options,
      DaemonChannel(connection->target, connection->security.credentials, connection->args,
                    connection->join_token, options.terms),
      std::move(backends.factories), faults);

  std::thread signal_thread([&agent, &stop_signals] {
    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    spdlog::info("received {}", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
    agent.Stop();
  });

  const absl::Status status = agent.Run();
  // Wake the signal thread when Run ended on its own (a fatal error).
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  if (!status.ok()) {
    spdlog::error("{}", status.ToString());
    return 1;
  }
  return 0;
}
