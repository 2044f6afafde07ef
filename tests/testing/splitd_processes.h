#ifndef SPLITD_TESTS_TESTING_SPLITD_PROCESSES_H_
#define SPLITD_TESTS_TESTING_SPLITD_PROCESSES_H_

// Launch and stop helpers for end-to-end tests that drive the real `splitd`, `splitctl` and
// `splitd-agent` binaries as child processes on 127.0.0.1. Failures to run a command are recorded
// as gtest failures where noted. Not thread-safe.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "tests/testing/subprocess.h"

namespace splitd::testing {

// `::testing::TempDir()/<stem><name of the running test>`, removed and created empty. A directory
// that cannot be made fails the test.
std::string FreshTestDir(const std::string& stem);

// A running `splitd` and the address it serves on.
struct DaemonProcess {
  std::unique_ptr<Subprocess> process;
  std::string address;
};

// Starts `splitd --listen=<listen> --port_file=<port_file> <flags...>` and waits for the address
// it writes to the port file. The error carries the daemon's log when it never writes one.
absl::StatusOr<DaemonProcess> StartDaemon(const std::string& port_file,
                                          const std::vector<std::string>& flags = {},
                                          const std::string& listen = "127.0.0.1:0");

// Starts `argv` with the extra `env` entries; a process that cannot start fails the test and
// gives nullptr.
std::unique_ptr<Subprocess> StartOrFail(const std::vector<std::string>& argv,
                                        const std::vector<std::string>& env = {});

// The argv of a `splitd-agent` on 127.0.0.1 registering with the daemon at `daemon`. `extra` comes
// last, so its flags override the ones before.
std::vector<std::string> AgentArgv(const std::string& daemon, const std::string& cluster,
                                   const std::string& node, int local_index, const std::string& pod,
                                   const std::vector<std::string>& extra = {});

// Runs `splitctl --addr <address> <args...>` to completion, with `env` entries ("NAME=value") added
// to its environment. A command that cannot run fails the test and gives an empty result.
CommandResult RunSplitctl(const std::string& address, const std::vector<std::string>& args,
                          const std::string& stdin_text = "",
                          absl::Duration timeout = absl::Seconds(60),
                          const std::vector<std::string>& env = {});

// `status <cluster> --watch` every 0.2 s until READY or FAILED or `watch_timeout`, as JSON lines.
std::vector<std::string> WatchStatusArgs(const std::string& cluster,
                                         absl::Duration watch_timeout = absl::Seconds(120));

// The last non-empty line of `text` parsed as JSON; null when there is none or it is not JSON.
nlohmann::json LastJsonLine(const std::string& text);

// SIGTERM, then up to 20 s for the process to exit. Still running fails the test; so does an exit
// other than 0 when `expect_zero_exit`.
void Terminate(Subprocess& process, bool expect_zero_exit);

// Terminate() for every process: all are signalled before the first is waited for.
void TerminateAll(const std::vector<std::unique_ptr<Subprocess>>& processes, bool expect_zero_exit);

// Fails the test for every process that has exited.
void ExpectAllRunning(const std::vector<std::unique_ptr<Subprocess>>& processes);

}  // namespace splitd::testing

#endif  // SPLITD_TESTS_TESTING_SPLITD_PROCESSES_H_
