#include "tests/testing/splitd_processes.h"

#include <signal.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace splitd::testing {

std::string FreshTestDir(const std::string& stem) {
  const std::string dir = ::testing::TempDir() + "/" + stem +
                          ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::error_code error;
  std::filesystem::remove_all(dir, error);
  EXPECT_FALSE(error) << "cannot remove " << dir << ": " << error.message();
  std::filesystem::create_directories(dir, error);
  EXPECT_FALSE(error) << "cannot create " << dir << ": " << error.message();
  return dir;
}

absl::StatusOr<DaemonProcess> StartDaemon(const std::string& port_file,
                                          const std::vector<std::string>& flags,
                                          const std::string& listen) {
  std::remove(port_file.c_str());
  std::vector<std::string> argv = {RunfilePath("daemon/splitd"), "--listen=" + listen,
                                   "--port_file=" + port_file};
  argv.insert(argv.end(), flags.begin(), flags.end());
  absl::StatusOr<Subprocess> started = Subprocess::Start(argv);
  if (!started.ok()) return started.status();
  DaemonProcess daemon;
  daemon.process = std::make_unique<Subprocess>(*std::move(started));
  absl::StatusOr<std::string> address = WaitForFileLine(port_file, absl::Seconds(30));
  if (!address.ok()) {
    return absl::Status(
        address.status().code(),
        absl::StrCat(address.status().message(), "; splitd log:\n", daemon.process->Stderr()));
  }
  daemon.address = *address;
  return daemon;
}

std::unique_ptr<Subprocess> StartOrFail(const std::vector<std::string>& argv,
                                        const std::vector<std::string>& env) {
  absl::StatusOr<Subprocess> started = Subprocess::Start(argv, env);
  EXPECT_THAT(started, IsOk());
  if (!started.ok()) return nullptr;
  return std::make_unique<Subprocess>(*std::move(started));
}

std::vector<std::string> AgentArgv(const std::string& daemon, const std::string& cluster,
                                   const std::string& node, int local_index, const std::string& pod,
                                   const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {RunfilePath("worker/splitd-agent"),
                                   "--daemon=" + daemon,
                                   "--cluster=" + cluster,
                                   "--node=" + node,
                                   absl::StrCat("--local_index=", local_index),
                                   "--pod=" + pod,
                                   "--host=127.0.0.1"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

CommandResult RunSplitctl(const std::string& address, const std::vector<std::string>& args,
                          const std::string& stdin_text, absl::Duration timeout,
                          const std::vector<std::string>& env) {
  std::vector<std::string> argv;
  if (!env.empty()) {
    argv.push_back("env");
    argv.insert(argv.end(), env.begin(), env.end());
  }
  argv.insert(argv.end(), {RunfilePath("client/splitctl"), "--addr", address});
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<CommandResult> result = RunCommand(argv, stdin_text, timeout);
  EXPECT_THAT(result, IsOk());
  return result.ok() ? *result : CommandResult{};
}

std::vector<std::string> WatchStatusArgs(const std::string& cluster, absl::Duration watch_timeout) {
  return {"status",
          cluster,
          "--watch",
          "--interval=0.2s",
          absl::StrCat("--watch_timeout=", absl::ToInt64Seconds(watch_timeout), "s"),
          "-o",
          "json"};
}

nlohmann::json LastJsonLine(const std::string& text) {
  std::string last;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) last = line;
  }
  if (!nlohmann::json::accept(last)) return nlohmann::json();
  return nlohmann::json::parse(last);
}

namespace {

void AwaitExit(Subprocess& process, bool expect_zero_exit) {
  absl::StatusOr<int> status = process.Wait(absl::Seconds(20));
  EXPECT_THAT(status, IsOk()) << "pid " << process.pid() << "\n" << process.Stderr();
  if (status.ok() && expect_zero_exit) {
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << "exit status " << *status << "\n"
        << process.Stderr();
  }
}

}  // namespace

void Terminate(Subprocess& process, bool expect_zero_exit) {
  process.Signal(SIGTERM);
  AwaitExit(process, expect_zero_exit);
}

void TerminateAll(const std::vector<std::unique_ptr<Subprocess>>& processes,
                  bool expect_zero_exit) {
  for (const auto& process : processes) process->Signal(SIGTERM);
  for (const auto& process : processes) AwaitExit(*process, expect_zero_exit);
}

void ExpectAllRunning(const std::vector<std::unique_ptr<Subprocess>>& processes) {
  for (const auto& process : processes) {
    EXPECT_THAT(process->Wait(absl::Milliseconds(1)), StatusIs(absl::StatusCode::kDeadlineExceeded))
        << "exited\n"
        << process->Stderr();
  }
}

}  // namespace splitd::testing
