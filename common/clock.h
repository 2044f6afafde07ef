#ifndef SPLITD_COMMON_CLOCK_H_
#define SPLITD_COMMON_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace splitd {

// Source of the current time, injected so that time-dependent logic can be tested without
// sleeping. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// The system's wall clock.
class RealClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

}  // namespace splitd

#endif  // SPLITD_COMMON_CLOCK_H_
