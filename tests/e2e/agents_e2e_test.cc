// The whole core loop with real processes on 127.0.0.1: the `splitd` binary, eight
// `splitd-agent` processes forming their groups over Gloo, and `splitctl` watching the cluster
// until READY. The plan files the agents write must agree with the daemon's GetPlan.

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
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

constexpr int kWorld = 8;

std::string Topology(const std::string& cluster, const std::string& method) {
  return absl::StrCat("cluster: ", cluster, "\nmethod: ", method, R"(
dims:
  - {name: tp, size: 2}
  - {name: pp, size: 2}
  - {name: dp, size: 2}
nodes: {gpus_per_node: 4}
groups:
  - {name: tp, dims: [tp], local: node}
  - {name: pp, dims: [pp]}
  - {name: dp, dims: [dp]}
  - {name: ep, dims: [tp, dp]}
  - {name: custom, split_ranks: [[0, 3], [1, 2], [4, 7]]}
)");
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

class AgentsEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::FreshTestDir("");
    auto daemon = testing::StartDaemon(dir_ + "/splitd.port", {"--log_level=info"});
    ASSERT_THAT(daemon, IsOk());
    daemon_ = std::move(daemon->process);
    address_ = daemon->address;
  }

  void TearDown() override {
    testing::TerminateAll(agents_, /*expect_zero_exit=*/true);
    if (daemon_ != nullptr) testing::Terminate(*daemon_, /*expect_zero_exit=*/false);
  }

  CommandResult Splitctl(std::vector<std::string> args, const std::string& stdin_text = "",
                         absl::Duration timeout = absl::Seconds(60)) {
    return testing::RunSplitctl(address_, args, stdin_text, timeout);
  }

  // Starts the agent of local index `index` (one node, so index = rank).
  void StartAgent(const std::string& cluster, int index, std::vector<std::string> extra = {}) {
    extra.insert(extra.begin(), {absl::StrCat("--plan_file=", dir_, "/plan-", index, ".json"),
                                 "--timeout_ms=30000"});
    auto agent =
        testing::StartOrFail(testing::AgentArgv(address_, cluster, absl::StrCat("node-", index / 4),
                                                index % 4, absl::StrCat("agent-", index), extra));
    ASSERT_NE(agent, nullptr);
    agents_.push_back(std::move(agent));
  }

  std::string AgentLogs() const {
    std::string logs;
    for (const auto& agent : agents_) logs += agent->Stderr();
    return logs + daemon_->Stderr();
  }

  // Runs `splitctl status --watch` until READY or FAILED; returns the last JSON object.
  nlohmann::json WatchUntilDone(const std::string& cluster, int* exit_code) {
    CommandResult watched = Splitctl(testing::WatchStatusArgs(cluster), "", absl::Seconds(150));
    *exit_code = watched.exit_code;
    nlohmann::json last = testing::LastJsonLine(watched.out);
    if (last.is_null()) {
      ADD_FAILURE() << "no status from splitctl: " << watched.out << watched.err;
      return nlohmann::json::object();
    }
    return last;
  }

  void ReachesReadyAndPlanFilesAgreeWithGetPlan(const std::string& method) {
    const std::string cluster = "e2e-" + method;
    CommandResult applied = Splitctl({"apply", "-f", "-"}, Topology(cluster, method));
    ASSERT_EQ(applied.exit_code, 0) << applied.err;
    // Started in reverse order: ranks still follow node and local index.
    for (int index = kWorld - 1; index >= 0; --index) StartAgent(cluster, index);

    int exit_code = -1;
    const nlohmann::json status = WatchUntilDone(cluster, &exit_code);
    ASSERT_EQ(exit_code, 0) << status.dump(2) << AgentLogs();
    EXPECT_EQ(status["state"], "READY");
    EXPECT_EQ(status["epoch"], 1);
    ASSERT_EQ(status["members"].size(), static_cast<size_t>(kWorld));
    for (int rank = 0; rank < kWorld; ++rank) {
      const nlohmann::json& member = status["members"][rank];
      EXPECT_EQ(member["rank"], rank);
      EXPECT_EQ(member["pod"], absl::StrCat("agent-", rank));
      EXPECT_EQ(member["phase"], "READY");
      EXPECT_GT(member["timings"]["groups_ready_ms"].get<double>(), 0);
    }
    for (const char* kind : {"tp", "pp", "dp", "ep", "custom"}) {
      const nlohmann::json& group = status["groups"][kind];
      EXPECT_EQ(group["ready"], group["groups"]) << kind;
      EXPECT_EQ(group["failed"], 0) << kind;
    }

    // Every agent's plan file holds exactly what GetPlan says about its rank.
    for (int rank = 0; rank < kWorld; ++rank) {
      const std::string path = absl::StrCat(dir_, "/plan-", rank, ".json");
      auto file_text = testing::WaitForFileLine(path, absl::Seconds(30));
      ASSERT_THAT(file_text, IsOk());
      const nlohmann::json file = nlohmann::json::parse(ReadFile(path));
      CommandResult plan = Splitctl({"plan", cluster, "--rank", absl::StrCat(rank), "-o", "json"});
      ASSERT_EQ(plan.exit_code, 0) << plan.err;
      const nlohmann::json expected = nlohmann::json::parse(plan.out);
      EXPECT_EQ(file["cluster"], cluster);
      EXPECT_EQ(file["rank"], rank);
      EXPECT_EQ(file["world_size"], kWorld);
      EXPECT_EQ(file["epoch"], 1);
      EXPECT_EQ(file["fingerprint"], expected["fingerprint"]);
      EXPECT_EQ(file["fingerprint"], status["fingerprint"]);
      for (const auto& [kind, lists] : expected["groups"].items()) {
        if (lists.empty()) {
          EXPECT_FALSE(file["groups"].contains(kind)) << "rank " << rank << " kind " << kind;
          continue;
        }
        ASSERT_TRUE(file["groups"].contains(kind)) << "rank " << rank << " kind " << kind;
        const nlohmann::json& group = file["groups"][kind];
        EXPECT_EQ(group["ranks"], lists[0]) << "rank " << rank << " kind " << kind;
        const auto& ranks = lists[0];
        const auto position = std::find(ranks.begin(), ranks.end(), rank) - ranks.begin();
        EXPECT_EQ(group["local_rank"], position) << "rank " << rank << " kind " << kind;
        EXPECT_EQ(group["backend"], "cpu:gloo");
      }
    }
  }

  std::string dir_;
  std::unique_ptr<Subprocess> daemon_;
  std::string address_;
  std::vector<std::unique_ptr<Subprocess>> agents_;
};

TEST_F(AgentsEndToEndTest, EightAgentsReachReadyWithSplit) {
  ReachesReadyAndPlanFilesAgreeWithGetPlan("split");

  // The daemon goes away: the agents keep running (and their groups) and retry with backoff.
  daemon_->Signal(SIGKILL);
  ASSERT_THAT(daemon_->Wait(absl::Seconds(10)), IsOk());
  absl::SleepFor(absl::Seconds(2));
  testing::ExpectAllRunning(agents_);
  daemon_.reset();
}

TEST_F(AgentsEndToEndTest, EightAgentsReachReadyWithInit) {
  ReachesReadyAndPlanFilesAgreeWithGetPlan("init");
}

TEST_F(AgentsEndToEndTest, FingerprintMismatchFailsTheClusterNamingTheRank) {
  const std::string cluster = "e2e-mismatch";
  CommandResult applied = Splitctl({"apply", "-f", "-"}, Topology(cluster, "split"));
  ASSERT_EQ(applied.exit_code, 0) << applied.err;
  for (int index = 0; index < kWorld; ++index) {
    // A short step bound: the other ranks stop waiting for rank 5 soon.
    std::vector<std::string> extra = {"--timeout_ms=5000"};
    if (index == 5) extra.push_back("--inject_fault=fingerprint");
    StartAgent(cluster, index, extra);
  }
  int exit_code = -1;
  const nlohmann::json status = WatchUntilDone(cluster, &exit_code);
  EXPECT_EQ(exit_code, 1);
  EXPECT_EQ(status["state"], "FAILED") << status.dump(2);
  EXPECT_THAT(status["reason"].get<std::string>(), HasSubstr("rank 5"));
  EXPECT_THAT(status["reason"].get<std::string>(), HasSubstr("fingerprint"));
  EXPECT_EQ(status["members"][5]["phase"], "FAILED");
}

// Without a usable GPU (no device, no driver, or no NCCL at all), a cuda:nccl cluster ends FAILED
// with a reason that names NCCL or CUDA, never a crash or a hang; the agents keep running.
TEST_F(AgentsEndToEndTest, DeviceGroupsWithoutAGpuFailWithTheReason) {
  if (std::getenv("SPLITD_TEST_HAS_GPU") != nullptr) GTEST_SKIP() << "a GPU is present";
  const std::string cluster = "e2e-nccl";
  CommandResult applied = Splitctl({"apply", "-f", "-"}, R"(cluster: e2e-nccl
dims: [{name: tp, size: 2}]
backend: "cpu:gloo,cuda:nccl"
)");
  ASSERT_EQ(applied.exit_code, 0) << applied.err;
  // Boolean flags stand alone.
  StartAgent(cluster, 0, {"--hold_communicators", "--nccl_serial_validation"});
  StartAgent(cluster, 1, {"--nohold_communicators"});
  int exit_code = -1;
  const nlohmann::json status = WatchUntilDone(cluster, &exit_code);
  EXPECT_EQ(exit_code, 1);
  ASSERT_EQ(status["state"], "FAILED") << status.dump(2);
  EXPECT_THAT(status["reason"].get<std::string>(),
              ::testing::ContainsRegex("backend cuda:nccl is not available on this agent "
                                       "\\(backend unavailable: .*(NCCL|CUDA|libnccl|cuda)"));
  testing::ExpectAllRunning(agents_);
}

TEST_F(AgentsEndToEndTest, BadAgentFlagsExitWithTwoAndOneLine) {
  const std::vector<std::vector<std::string>> cases = {
      {"--cluster=x", "--bogus"},
      {"--cluster=x", "--nolocal_index"},
      {"--cluster=x", "--local_index=-1"},
      {"--cluster=x", "--device=-2"},
      {"--cluster=x", "--hold_communicators=maybe"},
      {"--local_index=0"},
  };
  for (const std::vector<std::string>& flags : cases) {
    std::vector<std::string> argv = {RunfilePath("worker/splitd-agent")};
    argv.insert(argv.end(), flags.begin(), flags.end());
    auto result = RunCommand(argv, "", absl::Seconds(30));
    ASSERT_THAT(result, IsOk());
    EXPECT_EQ(result->exit_code, 2) << flags.back();
    EXPECT_THAT(result->err, ::testing::StartsWith("splitd-agent: ")) << flags.back();
    EXPECT_EQ(std::count(result->err.begin(), result->err.end(), '\n'), 1) << result->err;
  }
}

}  // namespace
}  // namespace splitd
