#include "client/splitctl_args.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace splitd::cli {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kEnvAddress[] = "daemon.example:7070";

struct ValidCase {
  std::string name;
  std::vector<std::string> args;
  // Expected fields; the rest keep their defaults.
  Command command = Command::kNone;
  std::string cluster;
  std::string address = kEnvAddress;
  OutputFormat output = OutputFormat::kTable;
  absl::Duration timeout = absl::Seconds(10);
  std::string file;
  std::string group;
  std::optional<int64_t> rank;
  bool help = false;
  bool version = false;
  bool watch = false;
  absl::Duration interval = absl::Seconds(1);
  absl::Duration watch_timeout = absl::ZeroDuration();
};

class SplitctlArgsValidTest : public ::testing::TestWithParam<ValidCase> {};

TEST_P(SplitctlArgsValidTest, Parses) {
  const ValidCase& c = GetParam();
  absl::StatusOr<SplitctlArgs> args = SplitctlArgs::Parse(c.args, kEnvAddress);
  ASSERT_THAT(args, IsOk());
  EXPECT_EQ(args->command, c.command);
  EXPECT_EQ(args->name, c.cluster);
  EXPECT_EQ(args->address, c.address);
  EXPECT_EQ(args->output, c.output);
  EXPECT_EQ(args->timeout, c.timeout);
  EXPECT_EQ(args->file, c.file);
  EXPECT_EQ(args->group, c.group);
  EXPECT_EQ(args->rank, c.rank);
  EXPECT_EQ(args->help, c.help);
  EXPECT_EQ(args->version, c.version);
  EXPECT_EQ(args->watch, c.watch);
  EXPECT_EQ(args->interval, c.interval);
  EXPECT_EQ(args->watch_timeout, c.watch_timeout);
}

std::vector<ValidCase> ValidCases() {
  std::vector<ValidCase> cases;
  auto add = [&cases](std::string name, std::vector<std::string> args) -> ValidCase& {
    cases.emplace_back();
    cases.back().name = std::move(name);
    cases.back().args = std::move(args);
    return cases.back();
  };
  add("Apply", {"apply", "-f", "topology.yaml"}).command = Command::kApply;
  cases.back().file = "topology.yaml";
  add("ApplyStdin", {"apply", "-f", "-"}).command = Command::kApply;
  cases.back().file = "-";
  add("ApplyLongFilename", {"apply", "--filename=t.json"}).command = Command::kApply;
  cases.back().file = "t.json";
  add("GetClusters", {"get", "clusters"}).command = Command::kGet;
  add("GetCluster", {"get", "cluster", "llama"}).command = Command::kGet;
  cases.back().cluster = "llama";
  add("Describe", {"describe", "cluster", "llama"}).command = Command::kDescribe;
  cases.back().cluster = "llama";
  add("Delete", {"delete", "clusters", "llama"}).command = Command::kDelete;
  cases.back().cluster = "llama";
  add("Status", {"status", "llama"}).command = Command::kStatus;
  cases.back().cluster = "llama";
  {
    ValidCase& c = add("PlanWithFilters", {"plan", "llama", "--group", "tp", "--rank", "5"});
    c.command = Command::kPlan;
    c.cluster = "llama";
    c.group = "tp";
    c.rank = 5;
  }
  {
    ValidCase& c = add("PlanFlagsWithEquals", {"plan", "--group=dp", "--rank=0", "llama"});
    c.command = Command::kPlan;
    c.cluster = "llama";
    c.group = "dp";
    c.rank = 0;
  }
  {
    ValidCase& c = add("GlobalsBeforeCommand", {"--addr", "10.0.0.1:9000", "-o", "json",
                                                "--timeout", "2.5", "get", "clusters"});
    c.command = Command::kGet;
    c.address = "10.0.0.1:9000";
    c.output = OutputFormat::kJson;
    c.timeout = absl::Milliseconds(2500);
  }
  {
    ValidCase& c = add("GlobalsAfterCommand",
                       {"status", "llama", "--addr=h:1", "--output=yaml", "--timeout=500ms"});
    c.command = Command::kStatus;
    c.cluster = "llama";
    c.address = "h:1";
    c.output = OutputFormat::kYaml;
    c.timeout = absl::Milliseconds(500);
  }
  {
    ValidCase& c = add("AttachedShortOutput", {"get", "clusters", "-ojson"});
    c.command = Command::kGet;
    c.output = OutputFormat::kJson;
  }
  {
    ValidCase& c = add("LastFlagWins", {"-o", "json", "get", "clusters", "-o", "table"});
    c.command = Command::kGet;
  }
  {
    ValidCase& c = add("DoubleDashEndsFlags", {"status", "--", "-odd-name"});
    c.command = Command::kStatus;
    c.cluster = "-odd-name";
  }
  {
    ValidCase& c = add("StatusWatch", {"status", "llama", "--watch"});
    c.command = Command::kStatus;
    c.cluster = "llama";
    c.watch = true;
  }
  {
    ValidCase& c =
        add("StatusWatchWithIntervalAndTimeout",
            {"status", "-w", "--interval", "250ms", "--watch_timeout=90", "llama", "-o", "json"});
    c.command = Command::kStatus;
    c.cluster = "llama";
    c.output = OutputFormat::kJson;
    c.watch = true;
    c.interval = absl::Milliseconds(250);
    c.watch_timeout = absl::Seconds(90);
  }
  {
    ValidCase& c = add("StatusWatchTimeoutZeroMeansNone",
                       {"status", "llama", "--watch", "--interval=2.5", "--watch_timeout", "0"});
    c.command = Command::kStatus;
    c.cluster = "llama";
    c.watch = true;
    c.interval = absl::Milliseconds(2500);
  }
  add("Help", {"--help"}).help = true;
  add("ShortHelp", {"-h"}).help = true;
  add("HelpCommand", {"help"}).help = true;
  add("HelpWinsOverBadCommand", {"apply", "--help"}).help = true;
  add("Version", {"--version"}).version = true;
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Cases, SplitctlArgsValidTest, ::testing::ValuesIn(ValidCases()),
                         [](const auto& info) { return info.param.name; });

struct InvalidCase {
  std::string name;
  std::vector<std::string> args;
  std::string message;
};

class SplitctlArgsInvalidTest : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(SplitctlArgsInvalidTest, RefusesWithMessage) {
  EXPECT_THAT(SplitctlArgs::Parse(GetParam().args, kEnvAddress),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(GetParam().message)));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, SplitctlArgsInvalidTest,
    ::testing::ValuesIn(std::vector<InvalidCase>{
        {"NoCommand", {}, "no command given"},
        {"OnlyFlags", {"-o", "json"}, "no command given"},
        {"UnknownCommand", {"rm", "x"}, "unknown command \"rm\""},
        {"UnknownFlag", {"get", "clusters", "--fast"}, "unknown flag \"--fast\""},
        {"UnknownShortFlag", {"get", "clusters", "-x"}, "unknown flag \"-x\""},
        {"MissingValue", {"get", "clusters", "--addr"}, "flag \"--addr\" needs a value"},
        {"EmptyAddress", {"get", "clusters", "--addr="}, "--addr needs HOST:PORT"},
        {"BadOutput",
         {"get", "clusters", "-o", "xml"},
         "-o must be table, json or yaml, got \"xml\""},
        {"BadTimeout",
         {"get", "clusters", "--timeout", "soon"},
         "--timeout needs a positive number of seconds, got \"soon\""},
        {"ZeroTimeout", {"get", "clusters", "--timeout", "0"}, "--timeout needs a positive"},
        {"ValueOnSwitch", {"--help=yes"}, "flag \"--help\" takes no value"},
        {"ApplyWithoutFile", {"apply"}, "apply needs -f FILE"},
        {"ApplyWithWords", {"apply", "-f", "t.yaml", "extra"}, "unexpected argument \"extra\""},
        {"FileFlagElsewhere", {"get", "clusters", "-f", "x"}, "flag \"-f\" does not apply to get"},
        {"GroupFlagElsewhere",
         {"status", "x", "--group", "tp"},
         "flag \"--group\" does not apply to status"},
        {"GetWithoutResource", {"get"}, "get needs a resource: get clusters"},
        {"UnknownResource", {"get", "pods"}, "unknown resource \"pods\""},
        {"DescribeWithoutName", {"describe", "cluster"}, "describe needs a name"},
        {"DeleteWithoutResource", {"delete", "x"}, "unknown resource \"x\""},
        {"PlanWithoutName", {"plan"}, "plan needs a cluster name"},
        {"PlanBadRank", {"plan", "x", "--rank", "two"}, "--rank needs an integer, got \"two\""},
        {"StatusExtraWord", {"status", "a", "b"}, "unexpected argument \"b\" for status"},
        {"WatchElsewhere", {"plan", "a", "--watch"}, "flag \"--watch\" does not apply to plan"},
        {"WatchTakesNoValue", {"status", "a", "--watch=yes"}, "flag \"--watch\" takes no value"},
        {"ZeroInterval",
         {"status", "a", "--watch", "--interval", "0"},
         "--interval needs a positive number of seconds, got \"0\""},
        {"NegativeInterval", {"status", "a", "--watch", "--interval=-1s"}, "--interval needs a"},
        {"BadInterval", {"status", "a", "--watch", "--interval", "often"}, "got \"often\""},
        {"IntervalWithoutWatch",
         {"status", "a", "--interval", "2"},
         "flag \"--interval\" needs --watch"},
        {"IntervalElsewhere",
         {"get", "clusters", "--interval", "2"},
         "flag \"--interval\" does not apply to get"},
        {"NegativeWatchTimeout",
         {"status", "a", "--watch", "--watch_timeout", "-5"},
         "--watch_timeout needs a number of seconds (0 waits forever), got \"-5\""},
        {"EmptyTlsCa", {"get", "clusters", "--tls_ca="}, "--tls_ca needs a file name"},
        {"EmptyServerName", {"get", "clusters", "--tls_server_name="}, "needs a name"},
        {"PlaintextTakesNoValue",
         {"get", "clusters", "--plaintext=yes"},
         "flag \"--plaintext\" takes no value"},
        {"WatchTimeoutWithoutWatch",
         {"status", "a", "--watch_timeout", "5"},
         "flag \"--watch_timeout\" needs --watch"},
    }),
    [](const auto& info) { return info.param.name; });

TEST(SplitctlArgsTest, TlsFlagsBeforeOrAfterTheCommand) {
  absl::StatusOr<SplitctlArgs> args =
      SplitctlArgs::Parse({"--tls_ca", "ca.pem", "get", "clusters", "--tls_cert=c.pem", "--tls_key",
                           "c.key", "--tls_server_name", "splitd.example", "--tls"},
                          kEnvAddress);
  ASSERT_THAT(args, IsOk());
  EXPECT_EQ(args->tls_ca, "ca.pem");
  EXPECT_EQ(args->tls_cert, "c.pem");
  EXPECT_EQ(args->tls_key, "c.key");
  EXPECT_EQ(args->tls_server_name, "splitd.example");
  EXPECT_TRUE(args->tls);
  EXPECT_FALSE(args->plaintext);

  absl::StatusOr<SplitctlArgs> plaintext =
      SplitctlArgs::Parse({"plan", "x", "--plaintext"}, kEnvAddress);
  ASSERT_THAT(plaintext, IsOk());
  EXPECT_TRUE(plaintext->plaintext);
  EXPECT_TRUE(plaintext->tls_ca.empty());
}

TEST(SplitctlArgsTest, UsageListsEveryCommandAndOption) {
  const std::string usage = SplitctlUsage();
  for (const char* word : {"apply -f FILE",  "get clusters",        "describe cluster NAME",
                           "plan NAME",      "--group KIND",        "--rank R",
                           "status NAME",    "delete cluster NAME", "--addr HOST:PORT",
                           "SPLITD_ADDR",    "--timeout SECONDS",   "-o, --output FORMAT",
                           "--watch",        "--interval SECONDS",  "--watch_timeout SECONDS",
                           "--version",      "-h, --help",          "--plaintext",
                           "--tls ",         "--tls_ca FILE",       "--tls_cert FILE",
                           "--tls_key FILE", "--tls_server_name",   "SPLITD_TLS_CA"}) {
    EXPECT_THAT(usage, HasSubstr(word));
  }
}

}  // namespace
}  // namespace splitd::cli
