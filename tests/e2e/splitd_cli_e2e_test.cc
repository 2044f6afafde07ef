// End to end: the real `splitd` binary on a free port, driven by the real `splitctl` binary.

#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/splitd_processes.h"
#include "tests/testing/subprocess.h"

namespace splitd {
namespace {

using ::splitd::testing::CommandResult;
using ::splitd::testing::IsOk;
using ::splitd::testing::RunCommand;
using ::splitd::testing::RunfilePath;
using ::splitd::testing::Subprocess;
using ::testing::HasSubstr;
using ::testing::Not;

class SplitdCliEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A fresh durable state per test.
    const std::string dir = testing::FreshTestDir("cli-");
    auto daemon = testing::StartDaemon(
        dir + "/splitd.port",
        {"--data_dir=" + dir + "/data", "--log_format=json", "--log_level=debug"});
    ASSERT_THAT(daemon, IsOk());
    daemon_ = std::move(daemon->process);
    address_ = daemon->address;
  }

  CommandResult Splitctl(std::vector<std::string> args, const std::string& stdin_text = "") {
    return testing::RunSplitctl(address_, args, stdin_text);
  }

  static std::string Example(const std::string& name) {
    return RunfilePath("deploy/examples/" + name);
  }

  std::unique_ptr<Subprocess> daemon_;
  std::string address_;
};

TEST_F(SplitdCliEndToEndTest, ApplyTwiceThenReadClustersAndPlans) {
  CommandResult created = Splitctl({"apply", "-f", Example("llama-serve.yaml")});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_THAT(created.out, HasSubstr("llama-serve"));
  EXPECT_THAT(created.out, HasSubstr("created"));

  CommandResult again = Splitctl({"apply", "-f", Example("llama-serve.yaml")});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.out, HasSubstr("unchanged"));

  CommandResult listed = Splitctl({"get", "clusters"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_THAT(listed.out, HasSubstr("NAME"));
  EXPECT_THAT(listed.out, HasSubstr("llama-serve"));

  CommandResult plan = Splitctl({"plan", "llama-serve", "-o", "json"});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  const nlohmann::json json = nlohmann::json::parse(plan.out);
  EXPECT_EQ(json["cluster"], "llama-serve");
  EXPECT_EQ(json["epoch"], 1);
  EXPECT_EQ(json["fingerprint"].get<std::string>().size(), 64u);
  const nlohmann::json expected_groups = nlohmann::json::parse(R"({
      "tp": [[0, 1], [2, 3], [4, 5], [6, 7]],
      "pp": [[0, 2], [1, 3], [4, 6], [5, 7]],
      "dp": [[0, 4], [1, 5], [2, 6], [3, 7]],
      "ep": [[0, 1, 4, 5], [2, 3, 6, 7]],
      "custom": [[0, 3], [1, 2], [4, 7], [5, 6]]})");
  EXPECT_EQ(json["groups"], expected_groups);
  EXPECT_EQ(json.size(), 4u) << "exactly cluster, epoch, fingerprint, groups";

  CommandResult filtered =
      Splitctl({"plan", "llama-serve", "--group", "dp", "--rank", "5", "-o", "json"});
  ASSERT_EQ(filtered.exit_code, 0) << filtered.err;
  EXPECT_EQ(nlohmann::json::parse(filtered.out)["groups"],
            nlohmann::json::parse(R"({"dp": [[1, 5]]})"));

  CommandResult described = Splitctl({"describe", "cluster", "llama-serve"});
  ASSERT_EQ(described.exit_code, 0) << described.err;
  EXPECT_THAT(described.out, HasSubstr(json["fingerprint"].get<std::string>()));
  EXPECT_THAT(described.out, HasSubstr("custom"));

  CommandResult status = Splitctl({"status", "llama-serve", "-o", "json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  const nlohmann::json status_json = nlohmann::json::parse(status.out);
  EXPECT_EQ(status_json["state"], "PENDING");
  EXPECT_EQ(status_json["epoch"], 1);
  EXPECT_EQ(status_json["fingerprint"], json["fingerprint"]);
}

TEST_F(SplitdCliEndToEndTest, JsonFromStdinAndAChangeMakesTheNextEpoch) {
  std::ifstream in(Example("megatron-moe.json"));
  std::string document((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CommandResult created = Splitctl({"apply", "-f", "-"}, document);
  ASSERT_EQ(created.exit_code, 0) << created.err;

  CommandResult plan = Splitctl({"plan", "megatron-moe", "-o", "json"});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  const nlohmann::json first = nlohmann::json::parse(plan.out);
  // Megatron-Core's expert mesh keeps the decoder's pipeline groups.
  EXPECT_EQ(first["groups"]["pp"], nlohmann::json::parse("[[0,8],[1,9],[2,10],[3,11],[4,12],"
                                                         "[5,13],[6,14],[7,15]]"));
  EXPECT_EQ(first["groups"]["ep"], nlohmann::json::parse("[[0,1,2,3],[4,5,6,7],[8,9,10,11],"
                                                         "[12,13,14,15]]"));

  nlohmann::json doc = nlohmann::json::parse(document);
  doc["method"] = "init";
  CommandResult updated = Splitctl({"apply", "-f", "-"}, doc.dump());
  ASSERT_EQ(updated.exit_code, 0) << updated.err;
  const nlohmann::json second =
      nlohmann::json::parse(Splitctl({"plan", "megatron-moe", "-o", "json"}).out);
  EXPECT_EQ(second["epoch"], 2);
  EXPECT_NE(second["fingerprint"], first["fingerprint"]);
  EXPECT_EQ(second["groups"], first["groups"]);
}

TEST_F(SplitdCliEndToEndTest, ErrorsExitNonZeroWithOneLineReason) {
  CommandResult missing = Splitctl({"plan", "no-such-job"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("NOT_FOUND"));
  EXPECT_THAT(missing.err, HasSubstr("no-such-job"));
  EXPECT_EQ(std::count(missing.err.begin(), missing.err.end(), '\n'), 1) << missing.err;
  EXPECT_EQ(missing.out, "");

  CommandResult invalid =
      Splitctl({"apply", "-f", "-"},
               "cluster: bad\ndims:\n  - {name: tp, size: 2}\n  - {name: pp, size: 0}\n");
  EXPECT_EQ(invalid.exit_code, 1);
  EXPECT_THAT(invalid.err, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(invalid.err, HasSubstr("dims[1].size"));

  CommandResult garbage = Splitctl({"apply", "-f", "-"}, "{{{{ not a topology");
  EXPECT_EQ(garbage.exit_code, 1);
  EXPECT_THAT(garbage.err, HasSubstr("error"));

  CommandResult empty = Splitctl({"apply", "-f", "-"}, "");
  EXPECT_EQ(empty.exit_code, 1);
  EXPECT_THAT(empty.err, HasSubstr("empty"));

  CommandResult no_file = Splitctl({"apply", "-f", "/nonexistent/topology.yaml"});
  EXPECT_EQ(no_file.exit_code, 1);
  EXPECT_THAT(no_file.err, HasSubstr("/nonexistent/topology.yaml"));

  auto unreachable = RunCommand({RunfilePath("client/splitctl"), "--addr", "127.0.0.1:1",
                                 "--timeout", "2", "get", "clusters"});
  ASSERT_THAT(unreachable, IsOk());
  EXPECT_EQ(unreachable->exit_code, 1);
  EXPECT_THAT(unreachable->err, HasSubstr("unreachable"));

  // None of it hurt the daemon.
  CommandResult listed = Splitctl({"get", "clusters", "-o", "json"});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(nlohmann::json::parse(listed.out).size(), 0u);
}

TEST_F(SplitdCliEndToEndTest, DeleteThenTheClusterIsGone) {
  ASSERT_EQ(Splitctl({"apply", "-f", Example("llama-serve.yaml")}).exit_code, 0);
  CommandResult deleted = Splitctl({"delete", "cluster", "llama-serve"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_THAT(deleted.out, HasSubstr("deleted"));
  CommandResult gone = Splitctl({"describe", "cluster", "llama-serve"});
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_THAT(gone.err, HasSubstr("NOT_FOUND"));
}

TEST_F(SplitdCliEndToEndTest, SigtermStopsTheDaemonGracefullyWithJsonLogs) {
  daemon_->Signal(SIGTERM);
  auto status = daemon_->Wait(absl::Seconds(15));
  ASSERT_THAT(status, IsOk());
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  const std::string log = daemon_->Stderr();
  EXPECT_THAT(log, HasSubstr("received SIGTERM"));
  EXPECT_THAT(log, HasSubstr("stopped"));
  for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
    EXPECT_TRUE(nlohmann::json::accept(line)) << line;
  }
}

}  // namespace
}  // namespace splitd
