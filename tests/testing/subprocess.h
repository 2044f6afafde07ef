#ifndef SPLITD_TESTS_TESTING_SUBPROCESS_H_
#define SPLITD_TESTS_TESTING_SUBPROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace splitd::testing {

// Path of a binary or data file of this workspace in the test's runfiles
// (e.g. "daemon/splitd").
std::string RunfilePath(const std::string& workspace_relative);

// A child process for multi-process tests: real binaries, stdout and stderr captured to files.
// Killed with SIGKILL on destruction if still running. Not thread-safe.
class Subprocess {
 public:
  // Starts `argv` with the extra `env` entries ("NAME=value") added to this environment.
  static absl::StatusOr<Subprocess> Start(const std::vector<std::string>& argv,
                                          const std::vector<std::string>& env = {});
  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) = delete;
  ~Subprocess();

  pid_t pid() const { return pid_; }
  void Signal(int signal_number);

  // Waits until the process exits or `timeout` passes. Returns the raw wait status, or
  // DEADLINE_EXCEEDED.
  absl::StatusOr<int> Wait(absl::Duration timeout);

  std::string Stdout() const;
  std::string Stderr() const;

 private:
  Subprocess() = default;
  pid_t pid_ = -1;
  std::optional<int> wait_status_;
  std::string stdout_path_;
  std::string stderr_path_;
};

// What a finished command printed and how it exited.
struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out;
  std::string err;
};

// Runs `argv` to completion with `stdin_text` on its standard input (bounded by `timeout`).
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const std::string& stdin_text = "",
                                         absl::Duration timeout = absl::Seconds(60));

// Polls `path` until it holds a non-empty first line, and returns that line.
absl::StatusOr<std::string> WaitForFileLine(const std::string& path, absl::Duration timeout);

}  // namespace splitd::testing

#endif  // SPLITD_TESTS_TESTING_SUBPROCESS_H_
