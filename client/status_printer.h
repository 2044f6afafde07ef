#ifndef SPLITD_CLIENT_STATUS_PRINTER_H_
#define SPLITD_CLIENT_STATUS_PRINTER_H_

#include <optional>
#include <string>

#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"
#include "nlohmann/json.hpp"
#include "splitd/v1/status.pb.h"

namespace splitd::cli {

// Renders GetStatus replies for `splitctl status`, and the enum and time spellings every
// splitctl output shares. Stateless.
class StatusPrinter {
 public:
  // "READY" for PHASE_READY: the lifecycle name without its prefix; the number if unknown.
  static std::string PhaseName(v1::Phase phase);

  // "ACTIVE" for MEMBER_STATE_ACTIVE.
  static std::string MemberStateName(v1::MemberState state);

  // RFC 3339 in UTC ("2024-05-01T10:00:00Z"); null when unset.
  static nlohmann::ordered_json TimeToJson(const google::protobuf::Timestamp& time);

  // {"cluster", "epoch", "state", "fingerprint", "reason", "world_size", "registered_members",
  //  "lost_members", "excluded_members", "epoch_reason", "readiness", ["workload_state"],
  //  "waiting_on": [{"rank", "member_id", "pod", "node", "layer", "phase", "seconds",
  //  "last_heartbeat_seconds", "state", "detail"}], "waiting_on_total", "timings",
  //  "members": [{"rank", "member_id", "pod", "node", "host", "local_index", "state", "phase",
  //  "reason", "timings": {...}, "backends", "last_seen", "phase_since", ["workload": {"phase",
  //  "phase_since", "reason", "groups": [{"kind", "phase", "allreduce_value", "latency_us"}]}],
  //  ["waiting_for_keys"]}], "groups": {KIND: {"groups", "ready", "failed", "max_latency_us",
  //  "median_latency_us", "validations": [...]}}}. Keys in brackets appear only when the daemon
  //  sent them (a workload that reported, a workload state, keys awaited); every other key is
  //  always present, times being null when unknown. States and phases are PhaseName()s.
  static nlohmann::ordered_json ToJson(const v1::ClusterStatus& status);

  // A summary (with "Readiness:" and, once a workload reported, "Workload:" lines), the ranks
  // the epoch waits for (WaitingLine(), at most kMaxWaitingLines, then "... and N more"), the
  // members table (RANK MEMBER POD NODE HOST STATE PHASE IN_PHASE WORKLOAD READY_MS REASON;
  // spares have rank "-", IN_PHASE is the time since phase_since as of `now` ("12.0s"),
  // WORKLOAD the workload's phase, READY_MS timings.groups_ready_ms; "-" for each when unknown)
  // and the group kinds table (KIND GROUPS READY FAILED MAX_LATENCY_US MEDIAN_LATENCY_US,
  // latencies "-" until reported).
  static std::string Table(const v1::ClusterStatus& status, absl::Time now);

  // Most waiting ranks Table() lists one by one.
  static constexpr int kMaxWaitingLines = 5;

  // "waiting for rank 5 (pod p, node n): PLANNED for 12.0 s, last heartbeat 11.8 s ago"; the
  // phase is preceded by "workload " for the workload layer and followed by "(DETAIL)" when
  // there is one, and ", member LOST" ends the line of a lost member. No newline.
  static std::string WaitingLine(const v1::WaitingRank& waiting);

  // Median of the kind's validation latencies, microseconds (the mean of the middle two for an
  // even count); nullopt without validations.
  static std::optional<double> MedianLatencyUs(const v1::GroupKindStatus& kind);
};

}  // namespace splitd::cli

#endif  // SPLITD_CLIENT_STATUS_PRINTER_H_
