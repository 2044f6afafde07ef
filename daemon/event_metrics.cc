#include "daemon/event_metrics.h"

#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace splitd::daemon {
namespace {

// A millisecond to five minutes: planning takes milliseconds, lease expiry and bootstrapping
// large worlds take seconds to minutes.
const std::vector<double>& PhaseBounds() {
  static const auto* bounds = new std::vector<double>{
      0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
  return *bounds;
}

}  // namespace

EventMetrics::EventMetrics(EventLog* events, metrics::Registry* registry)
    : events_(events),
      transitions_(registry->AddCounter("splitd_epoch_transitions_total",
                                        "Epochs started, by cause.", {"cause"})),
      phases_(registry->AddHistogram(
          "splitd_reconfiguration_phase_seconds",
          "Time each phase of a reconfiguration took (EpochTimings), by phase.", {"phase"},
          PhaseBounds())),
      stalls_(registry->AddCounter(
          "splitd_stalls_total",
          "Epochs failed because a rank stayed in one phase past its deadline, by the layer and "
          "phase it was stuck in.",
          {"layer", "phase"})) {
  {
    absl::MutexLock lock(&mu_);
    after_ = events_->LastSequence();
  }
  subscription_ = events_->Subscribe([this] { Drain(); });
  Drain();  // whatever was appended between reading the sequence and subscribing
}

EventMetrics::~EventMetrics() { events_->Unsubscribe(subscription_); }

void EventMetrics::Drain() {
  absl::MutexLock lock(&mu_);
  while (std::optional<v1::Event> event = events_->Next(after_, "")) {
    after_ = event->sequence();
    Observe(*event);
  }
}

void EventMetrics::Observe(const v1::Event& event) {
  if (event.kind() == v1::EVENT_KIND_STALLED) {
    const auto [layer, phase] = StallLabels(event);
    stalls_.WithLabels({layer, phase}).Increment();
    return;
  }
  const v1::EpochTimings& timings = event.timings();
  if (event.kind() == v1::EVENT_KIND_EPOCH_STARTED) {
    transitions_.WithLabels({EpochCause(event)}).Increment();
    if (timings.detect_ms() > 0) {
      phases_.WithLabels({"detect"}).Observe(timings.detect_ms() / 1000);
    }
    // Epochs started by ApplyTopology carry no timings: nothing was lost or decided.
    if (event.has_timings()) phases_.WithLabels({"plan"}).Observe(timings.plan_ms() / 1000);
    return;
  }
  if (event.kind() == v1::EVENT_KIND_PHASE_CHANGED && event.phase() == v1::PHASE_READY &&
      event.has_timings()) {
    const std::pair<const char*, double> phases[] = {
        {"deliver", timings.deliver_ms()}, {"bootstrap", timings.bootstrap_ms()},
        {"split", timings.split_ms()},     {"validate", timings.validate_ms()},
        {"ready", timings.ready_ms()},
    };
    for (const auto& [phase, ms] : phases) phases_.WithLabels({phase}).Observe(ms / 1000);
  }
}

std::pair<std::string, std::string> EventMetrics::StallLabels(const v1::Event& event) {
  std::pair<std::string, std::string> labels{"other", "other"};
  absl::string_view reason = event.reason();
  const size_t at = reason.find(" stuck in ");
  if (at == absl::string_view::npos) return labels;
  std::vector<absl::string_view> words =
      absl::StrSplit(reason.substr(at + 10), absl::MaxSplits(' ', 2));
  if (words.size() < 2) return labels;
  if (words[0] == "agent" || words[0] == "workload") labels.first = std::string(words[0]);
  for (absl::string_view phase : {"PLANNED", "BOOTSTRAPPING", "SPLITTING", "VALIDATING"}) {
    if (words[1] == phase) labels.second = std::string(phase);
  }
  return labels;
}

std::string EventMetrics::EpochCause(const v1::Event& event) {
  switch (event.cause()) {
    case v1::EPOCH_CAUSE_CREATED:
      return "created";
    case v1::EPOCH_CAUSE_TOPOLOGY_CHANGED:
      return "topology_changed";
    case v1::EPOCH_CAUSE_RECONFIGURED:
      return "reconfigure";
    case v1::EPOCH_CAUSE_MEMBER_LOST:
      return "member_lost";
    case v1::EPOCH_CAUSE_MEMBER_EXCLUDED:
      return "member_excluded";
    case v1::EPOCH_CAUSE_MEMBERS_RETURNED:
      return "members_returned";
    case v1::EPOCH_CAUSE_SCALED_UP:
      return "scale_up";
    case v1::EPOCH_CAUSE_RETRIED:
      return "retried";
    default:
      return "other";
  }
}

}  // namespace splitd::daemon
