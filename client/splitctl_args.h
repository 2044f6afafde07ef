#ifndef SPLITD_CLIENT_SPLITCTL_ARGS_H_
#define SPLITD_CLIENT_SPLITCTL_ARGS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace splitd::cli {

// The subcommand of a splitctl invocation.
enum class Command {
  kNone,  // only --help or --version
  kApply,
  kGet,
  kDescribe,
  kPlan,
  kStatus,
  kDelete,
  kReconfigure,
};

// How results are printed (`-o`).
enum class OutputFormat {
  kTable,
  kJson,
  kYaml,
};

// Default daemon address when neither --addr nor SPLITD_ADDR gives one.
inline constexpr char kDefaultAddress[] = "127.0.0.1:7070";

// splitctl's command line, parsed by hand: no global flag state, so tests can run many
// invocations in one process. Options may come before or after the subcommand.
struct SplitctlArgs {
  std::string address;                         // --addr
  absl::Duration timeout = absl::Seconds(10);  // --timeout, per call
  OutputFormat output = OutputFormat::kTable;  // -o
  bool help = false;                           // -h, --help, `help`
  bool version = false;                        // --version

  // Transport security (common/tls_credentials.h): --plaintext, or TLS when --tls or any
  // --tls_* file is given; with neither, plaintext to a loopback --addr and TLS (the system's
  // roots) elsewhere. Empty files fall back to $SPLITD_TLS_CA, $SPLITD_TLS_CERT, $SPLITD_TLS_KEY
  // and $SPLITD_TLS_SERVER_NAME unless --plaintext is given; $SPLITD_PLAINTEXT=1 stands for
  // --plaintext when nothing asks for TLS.
  bool plaintext = false;       // --plaintext
  bool tls = false;             // --tls
  std::string tls_ca;           // --tls_ca FILE: CA bundle the daemon's certificate chains to
  std::string tls_cert;         // --tls_cert FILE: client certificate chain (mutual TLS)
  std::string tls_key;          // --tls_key FILE: its private key
  std::string tls_server_name;  // --tls_server_name NAME: verified instead of --addr's host
  // Authorization (common/bearer_token.h): --token_file FILE (default $SPLITD_TOKEN_FILE)
  // holds the control token sent with every call; apply's --join_token_file FILE holds the
  // cluster's join token.
  std::string token_file;
  std::string join_token_file;

  Command command = Command::kNone;
  std::string name;             // the cluster NAME of get/describe/plan/status/delete
  std::string file;             // apply -f FILE ("-" is stdin)
  std::string group;            // plan --group KIND
  std::optional<int64_t> rank;  // plan --rank R

  // status --watch: poll every `interval` and print each change until the cluster is READY
  // (exit 0) or FAILED (exit 1), `watch_timeout` passes (zero: never) or a signal arrives.
  // --interval and --watch_timeout need --watch.
  bool watch = false;                                   // status --watch
  absl::Duration interval = absl::Seconds(1);           // status --interval, > 0
  absl::Duration watch_timeout = absl::ZeroDuration();  // status --watch_timeout, >= 0

  // reconfigure NAME: --set DIM=N (repeatable), --exclude-rank R and --exclude-node NODE
  // (repeatable), --method split|init, --epoch E (default: the current epoch, read first),
  // --dry-run.
  std::map<std::string, int64_t> set_dims;
  std::vector<int64_t> exclude_ranks;
  std::vector<std::string> exclude_nodes;
  std::string method;
  std::optional<int64_t> epoch;
  bool dry_run = false;

  // Parses `args` (without the program name). `default_address` is used when --addr is absent
  // (the caller passes $SPLITD_ADDR or kDefaultAddress). Any misuse is INVALID_ARGUMENT with a
  // one-line message naming the offending word, e.g. `unknown flag "--fast"`.
  static absl::StatusOr<SplitctlArgs> Parse(const std::vector<std::string>& args,
                                            absl::string_view default_address);
};

// The text `splitctl --help` prints.
std::string SplitctlUsage();

// The text `splitctl --version` prints (one line).
std::string SplitctlVersion();

}  // namespace splitd::cli

#endif  // SPLITD_CLIENT_SPLITCTL_ARGS_H_
