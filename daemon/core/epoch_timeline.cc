#include "daemon/core/epoch_timeline.h"

#include <algorithm>

#include "daemon/core/rank_report.h"

namespace splitd::core {

void EpochTimeline::Start(absl::Time now) {
  reason_.clear();
  detect_ms_ = 0;
  plan_ms_ = 0;
  started_ = now;
}

void EpochTimeline::SetCause(const std::string& reason, double detect_ms, double plan_ms) {
  reason_ = reason;
  detect_ms_ = detect_ms;
  plan_ms_ = plan_ms;
}

v1::EpochTimings EpochTimeline::Timings(const EpochReadiness& readiness) const {
  v1::EpochTimings timings;
  timings.set_detect_ms(detect_ms_);
  timings.set_plan_ms(plan_ms_);
  if (!readiness.assigned()) return timings;
  const double started_ms = absl::ToDoubleMilliseconds(started_ - absl::UnixEpoch());
  double received = 0;
  for (const AgentProgress::Rank& state : readiness.agents().ranks()) {
    const RankTimings& t = state.timings;
    received = std::max(received, t.plan_received_unix_ms);
    timings.set_bootstrap_ms(std::max(timings.bootstrap_ms(), t.bootstrap_ms));
    timings.set_split_ms(std::max(timings.split_ms(), t.split_ms));
    timings.set_validate_ms(std::max(timings.validate_ms(), t.validate_ms));
  }
  if (received > 0 && started_ != absl::InfinitePast()) {
    timings.set_deliver_ms(std::max(0.0, received - started_ms));
  }
  const absl::Time ready_at = readiness.ready_at();
  if (ready_at != absl::InfinitePast() && started_ != absl::InfinitePast()) {
    timings.set_ready_ms(absl::ToDoubleMilliseconds(ready_at - started_));
  }
  return timings;
}

}  // namespace splitd::core
