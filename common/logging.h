#ifndef SPLITD_COMMON_LOGGING_H_
#define SPLITD_COMMON_LOGGING_H_

#include <string>

#include "absl/status/status.h"

namespace splitd {

// Configures spdlog's default logger for a process: `level` is trace|debug|info|warn|error|off,
// `format` is "text" (human-readable) or "json" (one JSON object per line, for log collectors).
// Logs go to stderr. Returns INVALID_ARGUMENT for an unknown level or format.
absl::Status SetupLogging(const std::string& program, const std::string& level,
                          const std::string& format);

}  // namespace splitd

#endif  // SPLITD_COMMON_LOGGING_H_
