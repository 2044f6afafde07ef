// Fault tests with real processes: the `splitd` binary with a durable --data_dir is killed with
// SIGKILL at several points of a cluster's life and restarted on the same address; the eight
// `splitd-agent` processes keep running, and the cluster ends READY with nothing lost.

#include <signal.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
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
using ::splitd::testing::Subprocess;

constexpr int kWorld = 8;
constexpr char kTopology[] = R"(cluster: durable
method: split
dims:
  - {name: tp, size: 2}
  - {name: pp, size: 2}
  - {name: dp, size: 2}
)";

class DaemonRestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::FreshTestDir("");
    StartDaemon("127.0.0.1:0");
  }

  void TearDown() override {
    testing::TerminateAll(agents_, /*expect_zero_exit=*/false);
    if (daemon_ != nullptr) testing::Terminate(*daemon_, /*expect_zero_exit=*/false);
  }

  void StartDaemon(const std::string& listen) {
    auto daemon =
        testing::StartDaemon(dir_ + "/splitd.port", {"--data_dir=" + dir_ + "/data"}, listen);
    ASSERT_THAT(daemon, IsOk());
    daemon_ = std::move(daemon->process);
    address_ = daemon->address;
  }

  // SIGKILL, then a new daemon on the same address and data directory.
  void KillAndRestartDaemon() {
    daemon_->Signal(SIGKILL);
    ASSERT_THAT(daemon_->Wait(absl::Seconds(10)), IsOk());
    logs_ += daemon_->Stderr();
    StartDaemon(address_);
  }

  CommandResult Splitctl(std::vector<std::string> args, const std::string& stdin_text = "",
                         absl::Duration timeout = absl::Seconds(60)) {
    return testing::RunSplitctl(address_, args, stdin_text, timeout);
  }

  void StartAgent(int index) {
    auto agent = testing::StartOrFail(
        testing::AgentArgv(address_, "durable", absl::StrCat("node-", index / 4), index % 4,
                           absl::StrCat("agent-", index), {"--timeout_ms=60000"}));
    ASSERT_NE(agent, nullptr);
    agents_.push_back(std::move(agent));
  }

  nlohmann::json Status() {
    CommandResult result = Splitctl({"status", "durable", "-o", "json"});
    if (result.exit_code != 0 || !nlohmann::json::accept(result.out)) return {};
    return nlohmann::json::parse(result.out);
  }

  // Polls until the cluster is READY (or FAILED); returns the last status.
  nlohmann::json WaitUntilDone() {
    return testing::LastJsonLine(
        Splitctl(testing::WatchStatusArgs("durable"), "", absl::Seconds(150)).out);
  }

  std::string Logs() const {
    std::string logs = logs_ + (daemon_ ? daemon_->Stderr() : std::string());
    for (const auto& agent : agents_) logs += agent->Stderr();
    return logs;
  }

  // Member id -> rank of every ranked member.
  static std::map<std::string, int> Ranks(const nlohmann::json& status) {
    std::map<std::string, int> ranks;
    for (const nlohmann::json& member : status["members"]) {
      ranks[member["member_id"].get<std::string>()] = member["rank"].get<int>();
    }
    return ranks;
  }

  void ExpectAgentsAlive() { testing::ExpectAllRunning(agents_); }

  std::string dir_;
  std::string address_;
  std::string logs_;
  std::unique_ptr<Subprocess> daemon_;
  std::vector<std::unique_ptr<Subprocess>> agents_;
};

TEST_F(DaemonRestartTest, KilledAfterReadyComesBackReadyWithTheSameMembersAndRanks) {
  ASSERT_EQ(Splitctl({"apply", "-f", "-"}, kTopology).exit_code, 0);
  for (int i = 0; i < kWorld; ++i) StartAgent(i);
  const nlohmann::json before = WaitUntilDone();
  ASSERT_EQ(before.value("state", ""), "READY") << before.dump(2) << Logs();

  KillAndRestartDaemon();
  // At once, from the durable state alone.
  const nlohmann::json after = Status();
  ASSERT_FALSE(after.is_null()) << Logs();
  EXPECT_EQ(after["state"], "READY") << after.dump(2);
  EXPECT_EQ(after["epoch"], before["epoch"]);
  EXPECT_EQ(after["fingerprint"], before["fingerprint"]);
  EXPECT_EQ(after["registered_members"], kWorld);
  EXPECT_EQ(Ranks(after), Ranks(before));

  // The agents reconnect with their sessions; none registers as a new member, none re-forms.
  absl::SleepFor(absl::Seconds(6));
  const nlohmann::json later = Status();
  EXPECT_EQ(later["state"], "READY") << later.dump(2);
  EXPECT_EQ(later["registered_members"], kWorld);
  EXPECT_EQ(Ranks(later), Ranks(before));
  ExpectAgentsAlive();
  for (const auto& agent : agents_) {
    const std::string log = agent->Stderr();
    const size_t formed = log.find("groups formed");
    ASSERT_NE(formed, std::string::npos) << log;
    EXPECT_EQ(log.find("groups formed", formed + 1), std::string::npos)
        << "an agent formed its groups twice\n"
        << log;
  }
}

TEST_F(DaemonRestartTest, KilledWhileAgentsRegisterEndsReady) {
  ASSERT_EQ(Splitctl({"apply", "-f", "-"}, kTopology).exit_code, 0);
  for (int i = 0; i < kWorld / 2; ++i) StartAgent(i);
  for (int i = 0; i < 300; ++i) {
    const nlohmann::json status = Status();
    if (!status.is_null() && status["registered_members"] == kWorld / 2) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  KillAndRestartDaemon();
  EXPECT_EQ(Status()["registered_members"], kWorld / 2) << Logs();
  for (int i = kWorld / 2; i < kWorld; ++i) StartAgent(i);
  const nlohmann::json status = WaitUntilDone();
  EXPECT_EQ(status.value("state", ""), "READY") << status.dump(2) << Logs();
  EXPECT_EQ(status["registered_members"], kWorld);
  ExpectAgentsAlive();
}

TEST_F(DaemonRestartTest, KilledMidBootstrapEndsReady) {
  ASSERT_EQ(Splitctl({"apply", "-f", "-"}, kTopology).exit_code, 0);
  for (int i = 0; i < kWorld; ++i) StartAgent(i);
  // As soon as the plan is out (the ranks are bootstrapping), the daemon dies.
  for (int i = 0; i < 300; ++i) {
    const nlohmann::json status = Status();
    if (!status.is_null() && status["state"] != "PENDING") break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  KillAndRestartDaemon();
  const nlohmann::json status = WaitUntilDone();
  EXPECT_EQ(status.value("state", ""), "READY") << status.dump(2) << Logs();
  EXPECT_EQ(status["registered_members"], kWorld);
  EXPECT_EQ(status["epoch"], 1);
  ExpectAgentsAlive();
}

}  // namespace
}  // namespace splitd
