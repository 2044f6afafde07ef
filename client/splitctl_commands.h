#ifndef SPLITD_CLIENT_SPLITCTL_COMMANDS_H_
#define SPLITD_CLIENT_SPLITCTL_COMMANDS_H_

#include <istream>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace splitd::cli {

// Exit codes of splitctl.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

// Time and interruption as `status --watch` sees them: the seam that keeps the watch loop off
// the real clock in tests. The real one (used when RunSplitctl gets none) reads absl::Now(),
// sleeps for real, and turns SIGINT/SIGTERM into a stop for the duration of the watch.
class WatchClock {
 public:
  virtual ~WatchClock() = default;

  virtual absl::Time Now() = 0;

  // Waits `duration`, returning early once a stop was requested.
  virtual void Sleep(absl::Duration duration) = 0;

  // The signal that asked the watch to stop (SIGINT, SIGTERM), 0 while none did. The watch then
  // ends with exit code 128 + that number.
  virtual int StopSignal() = 0;
};

// Runs one splitctl invocation. `args` are the words after the program name. Results go to
// `out`; any failure is exactly one line `error: <reason>` on `err` and a non-zero exit code
// (kExitUsage for a bad command line, kExitError for everything else). The default address is
// $SPLITD_ADDR, else kDefaultAddress; `-f -` reads std::cin. Blocking; each call makes its own
// channel, so concurrent calls are independent.
int RunSplitctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// The same with stdin and the default address given, for tests; `clock` drives `status --watch`
// (null: the real clock, with SIGINT/SIGTERM handlers installed while watching).
int RunSplitctl(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                std::ostream& err, absl::string_view default_address, WatchClock* clock = nullptr);

}  // namespace splitd::cli

#endif  // SPLITD_CLIENT_SPLITCTL_COMMANDS_H_
