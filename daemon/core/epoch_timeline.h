#ifndef SPLITD_DAEMON_CORE_EPOCH_TIMELINE_H_
#define SPLITD_DAEMON_CORE_EPOCH_TIMELINE_H_

#include <string>

#include "absl/time/time.h"
#include "daemon/core/epoch_readiness.h"
#include "splitd/v1/status.pb.h"

namespace splitd::core {

// The current epoch's own record: when it started, why (its cause, as a reason), and how long
// that cause took to detect and to plan; with the ranks' reports (EpochReadiness), the
// per-phase timings of the epoch (EpochTimings in status.proto). Pure: time is an argument.
// Thread-compatible.
class EpochTimeline {
 public:
  // A new epoch started at `now`; its cause is unknown until SetCause.
  void Start(absl::Time now);

  // Why the current epoch was started, and how long its cause took to detect and to plan.
  void SetCause(const std::string& reason, double detect_ms, double plan_ms);
  const std::string& reason() const { return reason_; }

  // Detection and planning as set; delivery, bootstrap, split and validation the slowest
  // rank's (once ranks are assigned); READY from the epoch's start.
  v1::EpochTimings Timings(const EpochReadiness& readiness) const;

 private:
  std::string reason_;
  absl::Time started_ = absl::InfinitePast();
  double detect_ms_ = 0;
  double plan_ms_ = 0;
};

}  // namespace splitd::core

#endif  // SPLITD_DAEMON_CORE_EPOCH_TIMELINE_H_
