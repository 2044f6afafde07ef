#ifndef SPLITD_COMMON_AWAIT_CALLBACK_H_
#define SPLITD_COMMON_AWAIT_CALLBACK_H_

#include <optional>
#include <utility>

#include "absl/synchronization/notification.h"

namespace splitd {

// The synchronous form of a call that answers through a callback: runs `start` with a callback
// that takes a `Result`, waits until that callback has run once (on any thread, possibly before
// `start` returns), and returns what it was given.
template <typename Result, typename Start>
Result AwaitCallback(Start start) {
  absl::Notification answered;
  std::optional<Result> result;
  start([&](Result answer) {
    result.emplace(std::move(answer));
    answered.Notify();
  });
  answered.WaitForNotification();
  return *std::move(result);
}

}  // namespace splitd

#endif  // SPLITD_COMMON_AWAIT_CALLBACK_H_
