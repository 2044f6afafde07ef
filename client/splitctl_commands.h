#ifndef SPLITD_CLIENT_SPLITCTL_COMMANDS_H_
#define SPLITD_CLIENT_SPLITCTL_COMMANDS_H_

#include <istream>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace splitd::cli {

// Exit codes of splitctl.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

// Runs one splitctl invocation. `args` are the words after the program name. Results go to
// `out`; any failure is exactly one line `error: <reason>` on `err` and a non-zero exit code
// (kExitUsage for a bad command line, kExitError for everything else). The default address is
// $SPLITD_ADDR, else kDefaultAddress; `-f -` reads std::cin. Blocking; each call makes its own
// channel, so concurrent calls are independent.
int RunSplitctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// The same with stdin and the default address given, for tests.
int RunSplitctl(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                std::ostream& err, absl::string_view default_address);

}  // namespace splitd::cli

#endif  // SPLITD_CLIENT_SPLITCTL_COMMANDS_H_
