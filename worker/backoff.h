#ifndef SPLITD_WORKER_BACKOFF_H_
#define SPLITD_WORKER_BACKOFF_H_

#include <algorithm>

#include "absl/random/random.h"
#include "absl/time/time.h"

namespace splitd::worker {

// Exponential backoff with jitter for the agent's retries (Register, the plan stream, reports):
// each delay doubles from `initial` up to `max`, and is drawn uniformly from [d/2, d] so that
// the agents of a large cluster do not retry in lockstep after the daemon comes back.
// Not thread-safe: one instance per retry loop.
class Backoff {
 public:
  Backoff(absl::Duration initial, absl::Duration max)
      : initial_(initial), max_(max), next_(initial) {}

  // The delay before the next attempt; grows the one after.
  absl::Duration NextDelay() {
    const absl::Duration bound = next_;
    next_ = std::min(next_ * 2, max_);
    const double factor = absl::Uniform(gen_, 0.5, 1.0);
    return bound * factor;
  }

  // Back to `initial` after a success.
  void Reset() { next_ = initial_; }

 private:
  absl::Duration initial_;
  absl::Duration max_;
  absl::Duration next_;
  absl::BitGen gen_;
};

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_BACKOFF_H_
