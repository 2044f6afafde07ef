// Elastic reconfiguration with real processes on 127.0.0.1: the `splitd` binary, `splitd-agent`
// processes over Gloo and `splitctl`. A killed agent is detected by its lease and its replica
// dropped without human action; replacements scale the cluster back up; Reconfigure refuses a
// stale epoch, changes nothing on a dry run and excludes members, whose agents stop cleanly; a
// loss below the minimum degrades the cluster until the member returns (SIGSTOP / SIGCONT).

#include <signal.h>
#include <sys/wait.h>

#include <functional>
#include <memory>
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

// TP2 x DP`dp`, quick leases so that a loss is seen within about a second.
std::string Topology(const std::string& cluster, int dp, int min) {
  return absl::StrCat("cluster: ", cluster, R"(
dims:
  - {name: tp, size: 2}
  - {name: dp, size: )",
                      dp, R"(}
elastic: {min: )",
                      min, R"(, heartbeat_interval_ms: 200, lease_timeout_ms: 2000}
)");
}

class ElasticEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::FreshTestDir("");
    auto daemon = testing::StartDaemon(dir_ + "/splitd.port",
                                       {"--data_dir=" + dir_ + "/data", "--log_level=info"});
    ASSERT_THAT(daemon, IsOk());
    daemon_ = std::move(daemon->process);
    address_ = daemon->address;
  }

  void TearDown() override {
    for (auto& [name, agent] : agents_) agent->Signal(SIGCONT);
    std::vector<std::unique_ptr<Subprocess>> agents;
    for (auto& [name, agent] : agents_) agents.push_back(std::move(agent));
    testing::TerminateAll(agents, /*expect_zero_exit=*/false);
    if (daemon_ != nullptr) testing::Terminate(*daemon_, /*expect_zero_exit=*/false);
  }

  CommandResult Splitctl(std::vector<std::string> args, const std::string& stdin_text = "") {
    return testing::RunSplitctl(address_, args, stdin_text);
  }

  Subprocess* StartAgent(const std::string& cluster, const std::string& node, int local_index) {
    const std::string name = absl::StrCat(node, "-", local_index);
    auto agent = testing::StartOrFail(testing::AgentArgv(
        address_, cluster, node, local_index, "agent-" + name,
        {absl::StrCat("--plan_file=", dir_, "/plan-", name, ".json"), "--timeout_ms=20000"}));
    if (agent == nullptr) return nullptr;
    agents_.emplace_back(name, std::move(agent));
    return agents_.back().second.get();
  }

  Subprocess* Agent(const std::string& name) {
    for (auto& [agent_name, agent] : agents_) {
      if (agent_name == name) return agent.get();
    }
    return nullptr;
  }

  nlohmann::json Status(const std::string& cluster) {
    CommandResult result = Splitctl({"status", cluster, "-o", "json"});
    if (result.exit_code != 0 || !nlohmann::json::accept(result.out)) return nlohmann::json{};
    return nlohmann::json::parse(result.out);
  }

  // Polls the status until `done` holds; the last status either way.
  nlohmann::json WaitFor(const std::string& cluster,
                         const std::function<bool(const nlohmann::json&)>& done,
                         const std::string& what, absl::Duration timeout = absl::Seconds(90)) {
    const absl::Time deadline = absl::Now() + timeout;
    nlohmann::json status;
    while (absl::Now() < deadline) {
      status = Status(cluster);
      if (!status.is_null() && done(status)) return status;
      absl::SleepFor(absl::Milliseconds(200));
    }
    ADD_FAILURE() << "timed out waiting for " << what << "; last status:\n"
                  << status.dump(2) << "\ndaemon log:\n"
                  << daemon_->Stderr();
    return status;
  }

  static std::function<bool(const nlohmann::json&)> ReadyAt(int epoch, int world) {
    return [epoch, world](const nlohmann::json& status) {
      return status.value("state", "") == "READY" && status.value("epoch", 0) == epoch &&
             status.value("world_size", 0) == world;
    };
  }

  static std::string StateOf(const nlohmann::json& status, const std::string& pod) {
    for (const nlohmann::json& member : status["members"]) {
      if (member.value("pod", "") == pod) return member.value("state", "");
    }
    return "";
  }

  std::string dir_;
  std::unique_ptr<Subprocess> daemon_;
  std::string address_;
  std::vector<std::pair<std::string, std::unique_ptr<Subprocess>>> agents_;
};

TEST_F(ElasticEndToEndTest, KilledAgentShrinksTheReplicaDimAndReplacementsRestoreIt) {
  const std::string cluster = "elastic";
  ASSERT_EQ(Splitctl({"apply", "-f", "-"}, Topology(cluster, 4, 2)).exit_code, 0);
  for (int i = 0; i < 8; ++i) StartAgent(cluster, absl::StrCat("node-", i / 4), i % 4);
  WaitFor(cluster, ReadyAt(1, 8), "epoch 1 READY at world 8");

  // kill -9 the agent holding rank 5: its dp replica (ranks 4, 5) is dropped.
  Subprocess* victim = Agent("node-1-1");
  ASSERT_NE(victim, nullptr);
  victim->Signal(SIGKILL);
  nlohmann::json status = WaitFor(cluster, ReadyAt(2, 6), "epoch 2 READY at world 6 (dp 3)");
  EXPECT_THAT(status.value("epoch_reason", ""), HasSubstr("rank 5 (m-"));
  EXPECT_THAT(status.value("epoch_reason", ""), HasSubstr("dp 4 -> 3, world 8 -> 6"));
  EXPECT_EQ(StateOf(status, "agent-node-1-1"), "LOST");
  EXPECT_EQ(StateOf(status, "agent-node-1-0"), "SPARE");
  // Its plan stream closed with the process: lost after the 1 s stream grace, not the 2 s lease.
  EXPECT_GT(status["timings"].value("detect_ms", 0.0), 0.0);
  EXPECT_LT(status["timings"].value("detect_ms", 0.0), 2000.0);
  EXPECT_GT(status["timings"].value("ready_ms", 0.0), 0.0);
  CommandResult described = Splitctl({"describe", "cluster", cluster, "-o", "json"});
  ASSERT_EQ(described.exit_code, 0) << described.err;
  EXPECT_THAT(described.out, HasSubstr("\"plan_topology\""));

  // A replacement pair: with the freed member, one dp replica's worth of spares and one left.
  StartAgent(cluster, "node-2", 0);
  StartAgent(cluster, "node-2", 1);
  status = WaitFor(cluster, ReadyAt(3, 8), "epoch 3 READY at world 8 (dp 4 again)");
  EXPECT_THAT(status.value("epoch_reason", ""), HasSubstr("dp 3 -> 4, world 6 -> 8"));

  // Reconfigure: a stale epoch is refused and changes nothing.
  CommandResult stale = Splitctl({"reconfigure", cluster, "--set", "dp=2", "--epoch", "1"});
  EXPECT_EQ(stale.exit_code, 1);
  EXPECT_THAT(stale.err, HasSubstr("ABORTED"));
  EXPECT_THAT(stale.err, HasSubstr("is at epoch 3"));

  // A dry run shows the diff and changes nothing.
  CommandResult dry = Splitctl({"reconfigure", cluster, "--set", "dp=2", "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_THAT(dry.out, HasSubstr("would be reconfigured (dry run): epoch 3 -> 4, world 8 -> 4"));
  EXPECT_THAT(dry.out, HasSubstr("KIND"));
  absl::SleepFor(absl::Seconds(1));
  status = Status(cluster);
  EXPECT_EQ(status.value("epoch", 0), 3);
  EXPECT_EQ(status.value("world_size", 0), 8);

  // Excluding rank 0: the spare takes its rank; the excluded agent stops cleanly.
  CommandResult excluded = Splitctl({"reconfigure", cluster, "--exclude-rank", "0", "-o", "json"});
  ASSERT_EQ(excluded.exit_code, 0) << excluded.err;
  EXPECT_THAT(excluded.out, HasSubstr("rank 0 (m-"));
  status = WaitFor(cluster, ReadyAt(4, 8), "epoch 4 READY at world 8 after the exclusion");
  EXPECT_EQ(StateOf(status, "agent-node-0-0"), "GONE");
  Subprocess* gone = Agent("node-0-0");
  auto exit = gone->Wait(absl::Seconds(20));
  ASSERT_THAT(exit, IsOk()) << gone->Stderr();
  EXPECT_TRUE(WIFEXITED(*exit) && WEXITSTATUS(*exit) == 0) << gone->Stderr();
  EXPECT_THAT(gone->Stderr(), HasSubstr("excluded"));

  // The whole history is in the event stream's retained events and the audit log.
  CommandResult events = RunCommand({"cat", dir_ + "/data/audit.jsonl"}).value();
  EXPECT_THAT(events.out, HasSubstr("EVENT_KIND_MEMBER_LOST"));
  EXPECT_THAT(events.out, HasSubstr("lost: plan stream closed"));
  EXPECT_THAT(events.out, HasSubstr("EVENT_KIND_MEMBER_EXCLUDED"));
}

TEST_F(ElasticEndToEndTest, LossBelowTheMinimumDegradesUntilTheMemberReturns) {
  const std::string cluster = "degraded";
  ASSERT_EQ(Splitctl({"apply", "-f", "-"}, Topology(cluster, 2, 2)).exit_code, 0);
  for (int i = 0; i < 4; ++i) StartAgent(cluster, "node-0", i);
  WaitFor(cluster, ReadyAt(1, 4), "epoch 1 READY at world 4");

  // SIGSTOP past the lease: dp cannot drop below 2, so the cluster degrades and waits.
  Subprocess* paused = Agent("node-0-3");
  paused->Signal(SIGSTOP);
  nlohmann::json status = WaitFor(
      cluster, [](const nlohmann::json& s) { return s.value("state", "") == "DEGRADED"; },
      "DEGRADED");
  EXPECT_THAT(status.value("reason", ""), HasSubstr("below the minimum 2"));
  EXPECT_EQ(StateOf(status, "agent-node-0-3"), "LOST");
  EXPECT_EQ(status.value("epoch", 0), 1);

  // `status --watch` follows the daemon's events while the cluster is degraded.
  auto watch = Subprocess::Start({RunfilePath("client/splitctl"), "--addr", address_, "status",
                                  cluster, "--watch", "--interval=5s", "--watch_timeout=90s"});
  ASSERT_THAT(watch, IsOk());
  absl::SleepFor(absl::Milliseconds(500));

  // SIGCONT: the member heartbeats again and the cluster re-forms at full size.
  paused->Signal(SIGCONT);
  status = WaitFor(cluster, ReadyAt(2, 4), "epoch 2 READY at world 4 after the member returned");
  auto watched = watch->Wait(absl::Seconds(30));
  ASSERT_THAT(watched, IsOk()) << watch->Stderr();
  EXPECT_TRUE(WIFEXITED(*watched) && WEXITSTATUS(*watched) == 0) << watch->Stderr();
  EXPECT_THAT(watch->Stdout(),
              ::testing::ContainsRegex("MEMBER_RETURNED epoch 1 \\(m-[0-9] rank 3\\)"));
  EXPECT_THAT(watch->Stdout(), HasSubstr("EPOCH_STARTED epoch 2: every rank's member is alive"));
  EXPECT_EQ(StateOf(status, "agent-node-0-3"), "ACTIVE");
  EXPECT_THAT(status.value("epoch_reason", ""), HasSubstr("alive again"));
}

}  // namespace
}  // namespace splitd
