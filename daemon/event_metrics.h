#ifndef SPLITD_DAEMON_EVENT_METRICS_H_
#define SPLITD_DAEMON_EVENT_METRICS_H_

#include <cstdint>
#include <string>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "common/metrics.h"
#include "daemon/event_log.h"
#include "splitd/v1/control_service.pb.h"

namespace splitd::daemon {

// Epoch transitions and reconfiguration timings, read from the daemon's event stream so that
// the coordinator needs no knowledge of metrics:
//   splitd_epoch_transitions_total{cause}: one per EPOCH_STARTED event, `cause` from EpochCause;
//   splitd_reconfiguration_phase_seconds{phase}: "detect" (epochs started by a lost member) and
//     "plan" from EPOCH_STARTED, "deliver" to "ready" from the PHASE_CHANGED event that makes the
//     epoch READY (control_service.proto, EpochTimings);
//   splitd_stalls_total{layer, phase}: one per STALLED event (a rank past its deadline), by the
//     layer and phase it was stuck in.
// Counts only events appended after construction.
//
// Threading: thread-safe. Events are read on the thread that appends them (EventLog's wake-up).
// `events` and `registry` must outlive this object; destroying it unsubscribes.
class EventMetrics {
 public:
  EventMetrics(EventLog* events, metrics::Registry* registry);
  ~EventMetrics();

  EventMetrics(const EventMetrics&) = delete;
  EventMetrics& operator=(const EventMetrics&) = delete;

  // Why an epoch started (the event's EpochCause) as a label value: "created",
  // "topology_changed", "reconfigure", "member_lost", "member_excluded", "members_returned",
  // "scale_up", or "other" for an event without a cause.
  static std::string EpochCause(const v1::Event& event);

  // The layer ("agent", "workload") and phase ("BOOTSTRAPPING", ...) a STALLED event's reason
  // names ("rank 5 (pod p, node n) stuck in workload SPLITTING ..."); "other" for what it does
  // not name, so that no label takes free text.
  static std::pair<std::string, std::string> StallLabels(const v1::Event& event);

 private:
  // Reads every event after the last one seen.
  void Drain();
  void Observe(const v1::Event& event);

  EventLog* const events_;
  metrics::CounterFamily& transitions_;
  metrics::HistogramFamily& phases_;
  metrics::CounterFamily& stalls_;
  uint64_t subscription_ = 0;
  absl::Mutex mu_;
  uint64_t after_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_EVENT_METRICS_H_
