#ifndef SPLITD_CLIENT_STATUS_PRINTER_H_
#define SPLITD_CLIENT_STATUS_PRINTER_H_

#include <optional>
#include <string>

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
  //  "members": [{"rank", "member_id", "pod", "node", "host", "local_index", "state", "phase",
  //  "reason", "timings": {"bootstrap_ms", "split_ms", "validate_ms", "groups_ready_ms"},
  //  "backends", "last_seen"}], "groups": {KIND: {"groups", "ready", "failed", "max_latency_us",
  //  "median_latency_us", "validations": [...]}}}; every key is always present ("last_seen"
  //  and "median_latency_us" are null when unknown). State and phases are PhaseName()s.
  static nlohmann::ordered_json ToJson(const v1::ClusterStatus& status);

  // A summary, the members table (RANK MEMBER POD NODE HOST STATE PHASE READY_MS REASON; spares
  // have rank "-", READY_MS is timings.groups_ready_ms or "-") and the group kinds table (KIND
  // GROUPS READY FAILED MAX_LATENCY_US MEDIAN_LATENCY_US, latencies "-" until reported).
  static std::string Table(const v1::ClusterStatus& status);

  // Median of the kind's validation latencies, microseconds (the mean of the middle two for an
  // even count); nullopt without validations.
  static std::optional<double> MedianLatencyUs(const v1::GroupKindStatus& kind);
};

}  // namespace splitd::cli

#endif  // SPLITD_CLIENT_STATUS_PRINTER_H_
