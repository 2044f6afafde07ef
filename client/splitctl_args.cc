#include "client/splitctl_args.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/version.h"

namespace splitd::cli {
namespace {

// Every flag splitctl knows; `commands` empty means it is valid everywhere.
struct FlagSpec {
  absl::string_view long_name;
  absl::string_view short_name;
  bool takes_value;
  std::vector<Command> commands;
};

const std::vector<FlagSpec>& Flags() {
  static const auto* const flags = new std::vector<FlagSpec>{
      {"--addr", "", true, {}},
      {"--timeout", "", true, {}},
      {"--output", "-o", true, {}},
      {"--help", "-h", false, {}},
      {"--version", "", false, {}},
      {"--plaintext", "", false, {}},
      {"--tls", "", false, {}},
      {"--tls_ca", "", true, {}},
      {"--tls_cert", "", true, {}},
      {"--tls_key", "", true, {}},
      {"--tls_server_name", "", true, {}},
      {"--token_file", "", true, {}},
      {"--filename", "-f", true, {Command::kApply}},
      {"--join_token_file", "", true, {Command::kApply}},
      {"--group", "", true, {Command::kPlan}},
      {"--rank", "", true, {Command::kPlan}},
      {"--watch", "-w", false, {Command::kStatus}},
      {"--interval", "", true, {Command::kStatus}},
      {"--watch_timeout", "", true, {Command::kStatus}},
      {"--set", "", true, {Command::kReconfigure}},
      {"--exclude-rank", "", true, {Command::kReconfigure}},
      {"--exclude-node", "", true, {Command::kReconfigure}},
      {"--method", "", true, {Command::kReconfigure}},
      {"--epoch", "", true, {Command::kReconfigure}},
      {"--dry-run", "", false, {Command::kReconfigure}},
  };
  return *flags;
}

absl::Status UsageError(absl::string_view message) { return absl::InvalidArgumentError(message); }

std::string Quote(absl::string_view word) { return absl::StrCat("\"", word, "\""); }

// "2.5" (seconds) or an absl duration such as "500ms" or "1m30s"; nullopt when neither, or
// when negative or infinite.
std::optional<absl::Duration> ParseSeconds(absl::string_view value) {
  double seconds = 0;
  absl::Duration duration;
  if (absl::SimpleAtod(value, &seconds)) {
    if (!std::isfinite(seconds)) return std::nullopt;
    duration = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(value, &duration)) {
    return std::nullopt;
  }
  if (duration < absl::ZeroDuration() || duration == absl::InfiniteDuration()) {
    return std::nullopt;
  }
  return duration;
}

struct FlagValue {
  const FlagSpec* spec;
  std::string written;  // as the user wrote it, for messages: "-o", "--output"
  std::string value;
};

// Splits "--name=value" and "-ovalue"; looks the flag up.
absl::StatusOr<FlagValue> MatchFlag(absl::string_view arg, bool* has_inline_value) {
  std::string name(arg);
  std::string value;
  *has_inline_value = false;
  size_t equals = arg.find('=');
  if (absl::StartsWith(arg, "--") && equals != absl::string_view::npos) {
    name = std::string(arg.substr(0, equals));
    value = std::string(arg.substr(equals + 1));
    *has_inline_value = true;
  } else if (!absl::StartsWith(arg, "--") && arg.size() > 2) {
    name = std::string(arg.substr(0, 2));  // -ojson, -o=json
    value = std::string(arg.substr(arg[2] == '=' ? 3 : 2));
    *has_inline_value = true;
  }
  for (const FlagSpec& spec : Flags()) {
    if (name == spec.long_name || (!spec.short_name.empty() && name == spec.short_name)) {
      if (*has_inline_value && !spec.takes_value) {
        return UsageError(absl::StrCat("flag ", Quote(name), " takes no value"));
      }
      return FlagValue{&spec, name, value};
    }
  }
  return UsageError(absl::StrCat("unknown flag ", Quote(arg)));
}

absl::Status ApplyFlag(const FlagValue& flag, SplitctlArgs* args) {
  absl::string_view name = flag.spec->long_name;
  const std::string& value = flag.value;
  if (name == "--addr") {
    if (value.empty()) return UsageError("--addr needs HOST:PORT");
    args->address = value;
  } else if (name == "--timeout" || name == "--interval") {
    std::optional<absl::Duration> duration = ParseSeconds(value);
    if (!duration.has_value() || *duration == absl::ZeroDuration()) {
      return UsageError(absl::StrCat(name, " needs a positive number of seconds, got ",
                                     Quote(value)));
    }
    (name == "--timeout" ? args->timeout : args->interval) = *duration;
  } else if (name == "--watch_timeout") {
    std::optional<absl::Duration> duration = ParseSeconds(value);
    if (!duration.has_value()) {
      return UsageError(absl::StrCat(
          "--watch_timeout needs a number of seconds (0 waits forever), got ", Quote(value)));
    }
    args->watch_timeout = *duration;
  } else if (name == "--watch") {
    args->watch = true;
  } else if (name == "--output") {
    if (value == "table") {
      args->output = OutputFormat::kTable;
    } else if (value == "json") {
      args->output = OutputFormat::kJson;
    } else if (value == "yaml") {
      args->output = OutputFormat::kYaml;
    } else {
      return UsageError(
          absl::StrCat(flag.written, " must be table, json or yaml, got ", Quote(value)));
    }
  } else if (name == "--help") {
    args->help = true;
  } else if (name == "--version") {
    args->version = true;
  } else if (name == "--plaintext") {
    args->plaintext = true;
  } else if (name == "--tls") {
    args->tls = true;
  } else if (name == "--tls_ca" || name == "--tls_cert" || name == "--tls_key" ||
             name == "--tls_server_name") {
    if (value.empty()) {
      return UsageError(absl::StrCat(name, " needs a ",
                                     name == "--tls_server_name" ? "name" : "file name"));
    }
    (name == "--tls_ca"     ? args->tls_ca
     : name == "--tls_cert" ? args->tls_cert
     : name == "--tls_key"  ? args->tls_key
                            : args->tls_server_name) = value;
  } else if (name == "--token_file" || name == "--join_token_file") {
    if (value.empty()) return UsageError(absl::StrCat(name, " needs a file name"));
    (name == "--token_file" ? args->token_file : args->join_token_file) = value;
  } else if (name == "--filename") {
    if (value.empty()) return UsageError(absl::StrCat(flag.written, " needs a file name"));
    args->file = value;
  } else if (name == "--group") {
    if (value.empty()) return UsageError("--group needs a group kind");
    args->group = value;
  } else if (name == "--rank") {
    int64_t rank = 0;
    if (!absl::SimpleAtoi(value, &rank)) {
      return UsageError(absl::StrCat("--rank needs an integer, got ", Quote(value)));
    }
    args->rank = rank;
  } else if (name == "--set") {
    const size_t equals = value.find('=');
    int64_t size = 0;
    if (equals == std::string::npos || equals == 0 ||
        !absl::SimpleAtoi(value.substr(equals + 1), &size)) {
      return UsageError(absl::StrCat("--set needs DIM=SIZE (e.g. dp=3), got ", Quote(value)));
    }
    args->set_dims[value.substr(0, equals)] = size;
  } else if (name == "--exclude-rank") {
    int64_t rank = 0;
    if (!absl::SimpleAtoi(value, &rank)) {
      return UsageError(absl::StrCat("--exclude-rank needs an integer, got ", Quote(value)));
    }
    args->exclude_ranks.push_back(rank);
  } else if (name == "--exclude-node") {
    if (value.empty()) return UsageError("--exclude-node needs a node name");
    args->exclude_nodes.push_back(value);
  } else if (name == "--method") {
    if (value != "split" && value != "init") {
      return UsageError(absl::StrCat("--method must be split or init, got ", Quote(value)));
    }
    args->method = value;
  } else if (name == "--epoch") {
    int64_t epoch = 0;
    if (!absl::SimpleAtoi(value, &epoch) || epoch < 1) {
      return UsageError(absl::StrCat("--epoch needs an epoch >= 1, got ", Quote(value)));
    }
    args->epoch = epoch;
  } else if (name == "--dry-run") {
    args->dry_run = true;
  }
  return absl::OkStatus();
}

absl::StatusOr<Command> ParseCommand(absl::string_view word) {
  if (word == "apply") return Command::kApply;
  if (word == "get") return Command::kGet;
  if (word == "describe") return Command::kDescribe;
  if (word == "plan") return Command::kPlan;
  if (word == "status") return Command::kStatus;
  if (word == "delete") return Command::kDelete;
  if (word == "reconfigure") return Command::kReconfigure;
  return UsageError(absl::StrCat("unknown command ", Quote(word)));
}

// `get clusters`, `describe cluster NAME`: the resource word, in singular or plural.
absl::Status ExpectClusterResource(absl::string_view command,
                                   const std::vector<std::string>& words) {
  if (words.empty()) {
    return UsageError(absl::StrCat(command, " needs a resource: ", command, " clusters"));
  }
  if (words[0] != "cluster" && words[0] != "clusters") {
    return UsageError(
        absl::StrCat("unknown resource ", Quote(words[0]), "; the only resource is \"clusters\""));
  }
  return absl::OkStatus();
}

// Checks the positional words of `command` and stores the cluster name.
absl::Status ApplyWords(Command command, absl::string_view command_word,
                        const std::vector<std::string>& words, SplitctlArgs* args) {
  size_t max_words = 0;
  switch (command) {
    case Command::kNone:
      return absl::OkStatus();
    case Command::kApply:
      if (args->file.empty()) return UsageError("apply needs -f FILE (\"-f -\" reads stdin)");
      break;
    case Command::kGet:
      RETURN_IF_ERROR(ExpectClusterResource(command_word, words));
      if (words.size() > 1) args->name = words[1];
      max_words = 2;
      break;
    case Command::kDescribe:
    case Command::kDelete:
      RETURN_IF_ERROR(ExpectClusterResource(command_word, words));
      if (words.size() < 2) {
        return UsageError(
            absl::StrCat(command_word, " needs a name: ", command_word, " cluster NAME"));
      }
      args->name = words[1];
      max_words = 2;
      break;
    case Command::kPlan:
    case Command::kStatus:
    case Command::kReconfigure:
      if (words.empty()) {
        return UsageError(
            absl::StrCat(command_word, " needs a cluster name: ", command_word, " NAME"));
      }
      args->name = words[0];
      max_words = 1;
      break;
  }
  if (words.size() > max_words) {
    return UsageError(
        absl::StrCat("unexpected argument ", Quote(words[max_words]), " for ", command_word));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SplitctlArgs> SplitctlArgs::Parse(const std::vector<std::string>& argv,
                                                 absl::string_view default_address) {
  SplitctlArgs args;
  args.address = std::string(default_address);
  std::vector<std::string> words;
  std::vector<FlagValue> flags;
  bool only_words = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (only_words || arg == "-" || !absl::StartsWith(arg, "-")) {
      words.push_back(arg);
      continue;
    }
    if (arg == "--") {
      only_words = true;
      continue;
    }
    bool has_inline_value = false;
    ASSIGN_OR_RETURN(FlagValue flag, MatchFlag(arg, &has_inline_value));
    if (flag.spec->takes_value && !has_inline_value) {
      if (i + 1 >= argv.size()) {
        return UsageError(absl::StrCat("flag ", Quote(flag.written), " needs a value"));
      }
      flag.value = argv[++i];
    }
    RETURN_IF_ERROR(ApplyFlag(flag, &args));
    flags.push_back(std::move(flag));
  }
  if (!words.empty() && words[0] == "help") args.help = true;
  if (args.help || args.version) return args;
  if (words.empty()) return UsageError("no command given");

  ASSIGN_OR_RETURN(args.command, ParseCommand(words[0]));
  for (const FlagValue& flag : flags) {
    const std::vector<Command>& allowed = flag.spec->commands;
    if (!allowed.empty() &&
        std::find(allowed.begin(), allowed.end(), args.command) == allowed.end()) {
      return UsageError(
          absl::StrCat("flag ", Quote(flag.written), " does not apply to ", words[0]));
    }
  }
  if (!args.watch) {
    for (const FlagValue& flag : flags) {
      if (flag.spec->long_name == "--interval" || flag.spec->long_name == "--watch_timeout") {
        return UsageError(absl::StrCat("flag ", Quote(flag.written), " needs --watch"));
      }
    }
  }
  std::vector<std::string> rest(words.begin() + 1, words.end());
  RETURN_IF_ERROR(ApplyWords(args.command, words[0], rest, &args));
  return args;
}

std::string SplitctlUsage() {
  return R"(splitctl - operate splitd, the communicator split-plan daemon

Usage:
  splitctl apply -f FILE [--join_token_file FILE]
                                         create or update a cluster from a topology
                                         (YAML or JSON; "-f -" reads stdin); the join
                                         token file's token is what the cluster's agents
                                         must present to register
  splitctl get clusters [NAME]           list clusters
  splitctl describe cluster NAME         show a cluster: topology, group kinds
  splitctl plan NAME [--group KIND] [--rank R]
                                         show the current plan's groups
  splitctl status NAME [--watch [--interval SECONDS] [--watch_timeout SECONDS]]
                                         show readiness: members and group kinds;
                                         --watch (-w) polls every --interval (default 1)
                                         and prints each change until READY (exit 0),
                                         FAILED (exit 1), --watch_timeout passes (exit 1;
                                         default 0, no limit) or SIGINT/SIGTERM (exit
                                         128+signal)
  splitctl delete cluster NAME           remove a cluster and its plans
  splitctl reconfigure NAME [--set DIM=N]... [--exclude-rank R]... [--exclude-node NODE]...
                         [--method split|init] [--epoch E] [--dry-run]
                                         change the current epoch's layout; prints the
                                         new plan's diff; --epoch is the epoch expected
                                         (default: the current one); --dry-run changes
                                         nothing

Options (before or after the command):
  --addr HOST:PORT     daemon address (default: $SPLITD_ADDR, else 127.0.0.1:7070)
  --timeout SECONDS    deadline of each call (default 10; "500ms" also works)
  -o, --output FORMAT  table, json or yaml (default table)
  --plaintext          connect without TLS (default: $SPLITD_PLAINTEXT=1)
  --tls                connect with TLS even to a loopback --addr
  --tls_ca FILE        CA bundle the daemon's certificate must chain to
                       (default: $SPLITD_TLS_CA, else the system's roots)
  --tls_cert FILE      client certificate for mutual TLS, with --tls_key
                       (default: $SPLITD_TLS_CERT)
  --tls_key FILE       its private key, unencrypted (default: $SPLITD_TLS_KEY)
  --tls_server_name N  name to verify the daemon's certificate against instead of
                       --addr's host (default: $SPLITD_TLS_SERVER_NAME)
                       Any --tls* option turns TLS on; with neither it nor --plaintext,
                       TLS is on for every --addr that is not loopback.
  --token_file FILE    file holding the admin or observer token the daemon asks for
                       (default: $SPLITD_TOKEN_FILE)
  -h, --help           show this help
  --version            show the version

Exit status: 0 on success, 1 on any error, 2 on a usage error; errors are one line on stderr.
)";
}

std::string SplitctlVersion() { return absl::StrCat("splitctl ", kVersion, " (API splitd.v1)\n"); }

}  // namespace splitd::cli
