#ifndef SPLITD_WORKER_GLOO_GLOO_ERRORS_H_
#define SPLITD_WORKER_GLOO_GLOO_ERRORS_H_

#include <exception>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "gloo/common/error.h"

namespace splitd::worker {

// Thrown by our own code that runs inside Gloo calls (the rendezvous Store adapter), carrying the
// status to hand back once the exception has crossed Gloo. Derives from gloo::IoException
// because that is what Gloo's callers expect a failing Store to throw.
class GlooStatusError : public ::gloo::IoException {
 public:
  explicit GlooStatusError(absl::Status status)
      : ::gloo::IoException(std::string(status.message())), status_(std::move(status)) {}

  const absl::Status& status() const { return status_; }

 private:
  absl::Status status_;
};

// Converts the exception in flight (call from inside a catch block) to a status whose message
// starts with `what`: a GlooStatusError keeps its code; a Gloo timeout becomes DEADLINE_EXCEEDED,
// another Gloo I/O error UNAVAILABLE, anything else INTERNAL.
absl::Status StatusFromCurrentException(const std::string& what);

// Runs `fn` (returning void or absl::Status), turning any exception it throws into a status.
template <typename Fn>
absl::Status CallGloo(const std::string& what, Fn&& fn) {
  try {
    if constexpr (std::is_same_v<decltype(fn()), void>) {
      fn();
      return absl::OkStatus();
    } else {
      return fn();
    }
  } catch (...) {
    return StatusFromCurrentException(what);
  }
}

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_GLOO_GLOO_ERRORS_H_
