// End to end: the real splitd with --metrics_listen, two splitd-agent processes over Gloo reaching
// READY, and Debian's real Prometheus server scraping the daemon every second. The assertions go
// through Prometheus's HTTP API, so they check what an operator's Prometheus would store.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/testing/splitd_processes.h"
#include "tests/testing/subprocess.h"

namespace splitd {
namespace {

using ::splitd::testing::CommandResult;
using ::splitd::testing::IsOk;
using ::splitd::testing::Subprocess;

constexpr char kPrometheus[] = "/usr/bin/prometheus";
constexpr int kAgents = 2;
constexpr absl::Duration kPatience = absl::Seconds(90);

// A port that was free a moment ago. Prometheus cannot report a port it picked itself, so the
// test picks one; a clash shows as Prometheus exiting at once, and the test tries another.
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

// GET `path` with `params` from 127.0.0.1:`port` as JSON; nullopt while it does not answer.
std::optional<nlohmann::json> GetJson(int port, const std::string& path,
                                      const httplib::Params& params = {}) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5);
  client.set_read_timeout(10);
  httplib::Result result = client.Get(path, params, httplib::Headers{});
  if (!result || result->status != 200 || !nlohmann::json::accept(result->body)) {
    return std::nullopt;
  }
  return nlohmann::json::parse(result->body);
}

class MetricsEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::FreshTestDir("metrics_e2e_");
    const std::string metrics_port_file = dir_ + "/splitd.metrics_port";
    std::remove(metrics_port_file.c_str());
    auto daemon =
        testing::StartDaemon(dir_ + "/splitd.port", {"--metrics_listen=127.0.0.1:0",
                                                     "--metrics_port_file=" + metrics_port_file,
                                                     "--data_dir=" + dir_ + "/state"});
    ASSERT_THAT(daemon, IsOk());
    daemon_ = std::move(daemon->process);
    address_ = daemon->address;
    auto metrics_address = testing::WaitForFileLine(metrics_port_file, absl::Seconds(30));
    ASSERT_THAT(metrics_address, IsOk()) << daemon_->Stderr();
    metrics_address_ = *metrics_address;
  }

  void TearDown() override {
    if (prometheus_ != nullptr) {
      prometheus_->Signal(SIGTERM);
      if (!prometheus_->Wait(absl::Seconds(20)).ok()) prometheus_->Signal(SIGKILL);
    }
    testing::TerminateAll(agents_, /*expect_zero_exit=*/false);
    if (daemon_ != nullptr) testing::Terminate(*daemon_, /*expect_zero_exit=*/false);
  }

  CommandResult Splitctl(std::vector<std::string> args, const std::string& stdin_text = "",
                         absl::Duration timeout = absl::Seconds(60)) {
    return testing::RunSplitctl(address_, args, stdin_text, timeout);
  }

  void StartAgent(const std::string& cluster, int index) {
    auto agent = testing::StartOrFail(testing::AgentArgv(
        address_, cluster, "node-0", index, absl::StrCat("agent-", index), {"--timeout_ms=30000"}));
    ASSERT_NE(agent, nullptr);
    agents_.push_back(std::move(agent));
  }

  // Starts Prometheus scraping the daemon every second, with its data in the test's directory.
  void StartPrometheus() {
    const std::string config = dir_ + "/prometheus.yml";
    std::ofstream(config) << "global:\n"
                             "  scrape_interval: 1s\n"
                             "  scrape_timeout: 1s\n"
                             "  evaluation_interval: 1s\n"
                             "scrape_configs:\n"
                             "  - job_name: splitd\n"
                             "    static_configs:\n"
                             "      - targets: ['"
                          << metrics_address_ << "']\n";
    for (int attempt = 0; attempt < 5; ++attempt) {
      const int port = FreePort();
      ASSERT_GT(port, 0);
      auto prometheus = Subprocess::Start(
          {kPrometheus, "--config.file=" + config,
           absl::StrCat("--storage.tsdb.path=", dir_, "/tsdb-", attempt),
           absl::StrCat("--web.listen-address=127.0.0.1:", port), "--log.level=warn"});
      ASSERT_THAT(prometheus, IsOk());
      prometheus_ = std::make_unique<Subprocess>(*std::move(prometheus));
      const absl::Time deadline = absl::Now() + absl::Seconds(60);
      while (absl::Now() < deadline) {
        if (GetJson(port, "/api/v1/status/buildinfo").has_value()) {
          prometheus_port_ = port;
          return;
        }
        if (prometheus_->Wait(absl::Milliseconds(200)).ok()) break;  // exited: try another port
      }
      prometheus_->Signal(SIGKILL);
      ADD_FAILURE_AT(__FILE__, __LINE__) << "Prometheus did not start on port " << port << ":\n"
                                         << prometheus_->Stderr();
      prometheus_.reset();
      return;
    }
  }

  // Polls the instant query `query` until it returns one sample for which `accept` holds, and
  // returns its value (nullopt, with the last answer in the failure, when it never does).
  std::optional<double> WaitForQuery(const std::string& query,
                                     const std::function<bool(double)>& accept) {
    const absl::Time deadline = absl::Now() + kPatience;
    std::string last = "(no answer)";
    while (absl::Now() < deadline) {
      std::optional<nlohmann::json> answer =
          GetJson(prometheus_port_, "/api/v1/query", {{"query", query}});
      if (answer.has_value()) {
        last = answer->dump();
        const nlohmann::json& result = (*answer)["data"]["result"];
        if ((*answer)["status"] == "success" && result.is_array() && result.size() == 1) {
          const double value = std::stod(result[0]["value"][1].get<std::string>());
          if (accept(value)) return value;
        }
      }
      absl::SleepFor(absl::Milliseconds(500));
    }
    ADD_FAILURE() << "query " << query << " never gave an accepted value; last answer: " << last;
    return std::nullopt;
  }

  std::string dir_;
  std::unique_ptr<Subprocess> daemon_;
  std::string address_;
  std::string metrics_address_;
  std::vector<std::unique_ptr<Subprocess>> agents_;
  std::unique_ptr<Subprocess> prometheus_;
  int prometheus_port_ = 0;
};

TEST_F(MetricsEndToEndTest, PrometheusScrapesTheDaemonThroughAnEpochToReady) {
  struct stat info;
  ASSERT_EQ(stat(kPrometheus, &info), 0)
      << kPrometheus << " is missing: install Debian's prometheus package (scripts/setup.sh)";

  const std::string cluster = "e2e-metrics";
  CommandResult applied = Splitctl({"apply", "-f", "-"}, absl::StrCat("cluster: ", cluster, R"(
dims:
  - {name: tp, size: 2}
groups:
  - {name: tp, dims: [tp]}
)"));
  ASSERT_EQ(applied.exit_code, 0) << applied.err;
  for (int index = 0; index < kAgents; ++index) StartAgent(cluster, index);
  CommandResult watched =
      Splitctl({"status", cluster, "--watch", "--interval=0.2s", "--watch_timeout=120s"}, "",
               absl::Seconds(150));
  ASSERT_EQ(watched.exit_code, 0) << watched.out << watched.err << daemon_->Stderr();
  // One refused call, for a code other than OK.
  CommandResult missing = Splitctl({"get", "cluster", "no-such-cluster"});
  ASSERT_NE(missing.exit_code, 0);
  ASSERT_THAT(missing.err, ::testing::HasSubstr("no-such-cluster"));

  StartPrometheus();
  ASSERT_GT(prometheus_port_, 0);

  // Prometheus reports the daemon's target up.
  const absl::Time deadline = absl::Now() + kPatience;
  std::string targets = "(no answer)";
  bool up = false;
  while (!up && absl::Now() < deadline) {
    std::optional<nlohmann::json> answer = GetJson(prometheus_port_, "/api/v1/targets");
    if (answer.has_value()) {
      targets = answer->dump();
      for (const nlohmann::json& target : (*answer)["data"]["activeTargets"]) {
        if (target["scrapeUrl"] == absl::StrCat("http://", metrics_address_, "/metrics") &&
            target["health"] == "up") {
          up = true;
        }
      }
    }
    if (!up) absl::SleepFor(absl::Milliseconds(500));
  }
  ASSERT_TRUE(up) << "target never up: " << targets << "\n" << prometheus_->Stderr();

  auto equals = [](double expected) { return [expected](double v) { return v == expected; }; };
  auto at_least = [](double minimum) { return [minimum](double v) { return v >= minimum; }; };
  EXPECT_TRUE(WaitForQuery("splitd_clusters{state=\"READY\"}", equals(1)));
  EXPECT_TRUE(WaitForQuery("splitd_clusters{state=\"FAILED\"}", equals(0)));
  EXPECT_TRUE(WaitForQuery("splitd_members{state=\"alive\"}", equals(kAgents)));
  EXPECT_TRUE(WaitForQuery("splitd_members{state=\"lost\"}", equals(0)));
  EXPECT_TRUE(WaitForQuery("sum(splitd_rpc_requests_total{method=~\".*/Register\",code=\"OK\"})",
                           at_least(kAgents)));
  EXPECT_TRUE(
      WaitForQuery("sum(splitd_rpc_requests_total{method=\"/splitd.v1.ControlService/GetCluster\","
                   "code=\"NOT_FOUND\"})",
                   at_least(1)));
  EXPECT_TRUE(
      WaitForQuery("sum(splitd_rpc_duration_seconds_count{method=\"/splitd.v1.AgentService/"
                   "ReportGroupStatus\"})",
                   at_least(kAgents)));
  EXPECT_TRUE(WaitForQuery("splitd_epoch_transitions_total{cause=\"created\"}", equals(1)));
  EXPECT_TRUE(
      WaitForQuery("splitd_reconfiguration_phase_seconds_count{phase=\"ready\"}", equals(1)));
  EXPECT_TRUE(WaitForQuery("splitd_reconfiguration_phase_seconds_sum{phase=\"ready\"}",
                           [](double v) { return v > 0; }));
  EXPECT_TRUE(
      WaitForQuery("sum(splitd_store_write_seconds_count)", [](double v) { return v > 0; }));
  EXPECT_TRUE(
      WaitForQuery("splitd_store_write_seconds_count{operation=\"add_member\"}", equals(kAgents)));
  EXPECT_TRUE(WaitForQuery("count(splitd_build_info == 1)", equals(1)));
  EXPECT_TRUE(WaitForQuery("up{job=\"splitd\"}", equals(1)));
}

}  // namespace
}  // namespace splitd
