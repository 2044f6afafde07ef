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

struct FlagSpec;

struct FlagValue {
  const FlagSpec* spec;
  std::string written;  // as the user wrote it, for messages: "-o", "--output"
  std::string value;
};

// Checks a flag's value and stores it in `args`; INVALID_ARGUMENT naming the flag when the
// value does not fit.
using FlagSetter = absl::Status (*)(const FlagValue& flag, SplitctlArgs* args);

// Every flag splitctl knows; `commands` empty means it is valid everywhere.
struct FlagSpec {
  absl::string_view long_name;
  absl::string_view short_name;
  bool takes_value;
  std::vector<Command> commands;
  FlagSetter set;
};

// A flag without a value that turns `field` on.
template <bool SplitctlArgs::*field>
absl::Status SetTrue(const FlagValue&, SplitctlArgs* args) {
  args->*field = true;
  return absl::OkStatus();
}

// A flag whose value names a file; messages use the flag as written ("-f" or "--filename").
template <std::string SplitctlArgs::*field>
absl::Status SetFileName(const FlagValue& flag, SplitctlArgs* args) {
  if (flag.value.empty()) return UsageError(absl::StrCat(flag.written, " needs a file name"));
  args->*field = flag.value;
  return absl::OkStatus();
}

// --timeout and --interval: a duration above zero.
template <absl::Duration SplitctlArgs::*field>
absl::Status SetPositiveSeconds(const FlagValue& flag, SplitctlArgs* args) {
  std::optional<absl::Duration> duration = ParseSeconds(flag.value);
  if (!duration.has_value() || *duration == absl::ZeroDuration()) {
    return UsageError(absl::StrCat(flag.spec->long_name,
                                   " needs a positive number of seconds, got ", Quote(flag.value)));
  }
  args->*field = *duration;
  return absl::OkStatus();
}

absl::Status SetAddress(const FlagValue& flag, SplitctlArgs* args) {
  if (flag.value.empty()) return UsageError("--addr needs HOST:PORT");
  args->address = flag.value;
  return absl::OkStatus();
}

absl::Status SetWatchTimeout(const FlagValue& flag, SplitctlArgs* args) {
  std::optional<absl::Duration> duration = ParseSeconds(flag.value);
  if (!duration.has_value()) {
    return UsageError(absl::StrCat(
        "--watch_timeout needs a number of seconds (0 waits forever), got ", Quote(flag.value)));
  }
  args->watch_timeout = *duration;
  return absl::OkStatus();
}

absl::Status SetOutput(const FlagValue& flag, SplitctlArgs* args) {
  if (flag.value == "table") {
    args->output = OutputFormat::kTable;
  } else if (flag.value == "json") {
    args->output = OutputFormat::kJson;
  } else if (flag.value == "yaml") {
    args->output = OutputFormat::kYaml;
  } else {
    return UsageError(
        absl::StrCat(flag.written, " must be table, json or yaml, got ", Quote(flag.value)));
  }
  return absl::OkStatus();
}

absl::Status SetTlsServerName(const FlagValue& flag, SplitctlArgs* args) {
  if (flag.value.empty()) return UsageError("--tls_server_name needs a name");
  args->tls_server_name = flag.value;
  return absl::OkStatus();
}

absl::Status SetGroup(const FlagValue& flag, SplitctlArgs* args) {
  if (flag.value.empty()) return UsageError("--group needs a group kind");
  args->group = flag.value;
  return absl::OkStatus();
}

// --rank and --exclude-rank: any integer.
absl::StatusOr<int64_t> ParseRank(const FlagValue& flag) {
  int64_t rank = 0;
  if (!absl::SimpleAtoi(flag.value, &rank)) {
    return UsageError(
        absl::StrCat(flag.spec->long_name, " needs an integer, got ", Quote(flag.value)));
  }
  return rank;
}

absl::Status SetRank(const FlagValue& flag, SplitctlArgs* args) {
  ASSIGN_OR_RETURN(args->rank, ParseRank(flag));
  return absl::OkStatus();
}

absl::Status AddExcludedRank(const FlagValue& flag, SplitctlArgs* args) {
  ASSIGN_OR_RETURN(int64_t rank, ParseRank(flag));
  args->exclude_ranks.push_back(rank);
  return absl::OkStatus();
}

absl::Status AddExcludedNode(const FlagValue& flag, SplitctlArgs* args) {
  if (flag.value.empty()) return UsageError("--exclude-node needs a node name");
  args->exclude_nodes.push_back(flag.value);
  return absl::OkStatus();
}

// --set DIM=SIZE, repeatable; a later size of the same dim replaces the earlier one.
absl::Status SetDim(const FlagValue& flag, SplitctlArgs* args) {
  const std::string& value = flag.value;
  const size_t equals = value.find('=');
  int64_t size = 0;
  if (equals == std::string::npos || equals == 0 ||
      !absl::SimpleAtoi(value.substr(equals + 1), &size)) {
    return UsageError(absl::StrCat("--set needs DIM=SIZE (e.g. dp=3), got ", Quote(value)));
  }
  args->set_dims[value.substr(0, equals)] = size;
  return absl::OkStatus();
}

absl::Status SetMethod(const FlagValue& flag, SplitctlArgs* args) {
  if (flag.value != "split" && flag.value != "init") {
    return UsageError(absl::StrCat("--method must be split or init, got ", Quote(flag.value)));
  }
  args->method = flag.value;
  return absl::OkStatus();
}

absl::Status SetEpoch(const FlagValue& flag, SplitctlArgs* args) {
  int64_t epoch = 0;
  if (!absl::SimpleAtoi(flag.value, &epoch) || epoch < 1) {
    return UsageError(absl::StrCat("--epoch needs an epoch >= 1, got ", Quote(flag.value)));
  }
  args->epoch = epoch;
  return absl::OkStatus();
}

const std::vector<FlagSpec>& Flags() {
  using Args = SplitctlArgs;
  static const auto* const flags = new std::vector<FlagSpec>{
      {"--addr", "", true, {}, &SetAddress},
      {"--timeout", "", true, {}, &SetPositiveSeconds<&Args::timeout>},
      {"--output", "-o", true, {}, &SetOutput},
      {"--help", "-h", false, {}, &SetTrue<&Args::help>},
      {"--version", "", false, {}, &SetTrue<&Args::version>},
      {"--plaintext", "", false, {}, &SetTrue<&Args::plaintext>},
      {"--tls", "", false, {}, &SetTrue<&Args::tls>},
      {"--tls_ca", "", true, {}, &SetFileName<&Args::tls_ca>},
      {"--tls_cert", "", true, {}, &SetFileName<&Args::tls_cert>},
      {"--tls_key", "", true, {}, &SetFileName<&Args::tls_key>},
      {"--tls_server_name", "", true, {}, &SetTlsServerName},
      {"--token_file", "", true, {}, &SetFileName<&Args::token_file>},
      {"--filename", "-f", true, {Command::kApply}, &SetFileName<&Args::file>},
      {"--join_token_file", "", true, {Command::kApply}, &SetFileName<&Args::join_token_file>},
      {"--group", "", true, {Command::kPlan}, &SetGroup},
      {"--rank", "", true, {Command::kPlan}, &SetRank},
      {"--watch", "-w", false, {Command::kStatus}, &SetTrue<&Args::watch>},
      {"--interval", "", true, {Command::kStatus}, &SetPositiveSeconds<&Args::interval>},
      {"--watch_timeout", "", true, {Command::kStatus}, &SetWatchTimeout},
      {"--set", "", true, {Command::kReconfigure}, &SetDim},
      {"--exclude-rank", "", true, {Command::kReconfigure}, &AddExcludedRank},
      {"--exclude-node", "", true, {Command::kReconfigure}, &AddExcludedNode},
      {"--method", "", true, {Command::kReconfigure}, &SetMethod},
      {"--epoch", "", true, {Command::kReconfigure}, &SetEpoch},
      {"--dry-run", "", false, {Command::kReconfigure}, &SetTrue<&Args::dry_run>},
  };
  return *flags;
}

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
    RETURN_IF_ERROR(flag.spec->set(flag, &args));
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
