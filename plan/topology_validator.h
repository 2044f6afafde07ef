#ifndef SPLITD_PLAN_TOPOLOGY_VALIDATOR_H_
#define SPLITD_PLAN_TOPOLOGY_VALIDATOR_H_

#include <algorithm>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "splitd/v1/topology.pb.h"

namespace splitd::plan {

// Limits that keep every request bounded in time and memory.
inline constexpr int64_t kMaxWorldSize = int64_t{1} << 20;
inline constexpr int64_t kMaxDimsPerMesh = 32;
inline constexpr int64_t kMaxMeshes = 16;
inline constexpr int64_t kMaxGroupKinds = 64;
inline constexpr int64_t kMaxNameLength = 63;
inline constexpr int64_t kDefaultAllreduceElements = 1024;
inline constexpr int64_t kMaxAllreduceElements = int64_t{1} << 26;
inline constexpr int64_t kMaxBandwidthBytes = int64_t{1} << 34;
inline constexpr absl::string_view kDefaultReplicaDim = "dp";
inline constexpr int64_t kDefaultHeartbeatIntervalMs = 2000;
inline constexpr int64_t kMinHeartbeatIntervalMs = 50;
inline constexpr int64_t kMaxHeartbeatIntervalMs = 600000;
inline constexpr int64_t kMaxLeaseTimeoutMs = 3600000;
// How long a closed plan stream may stay closed when elastic.stream_grace_ms is unset.
inline constexpr int64_t kDefaultStreamGraceMs = 1000;
// elastic.retries and elastic.retry_delay_ms: their largest values, and the delay when unset.
inline constexpr int64_t kMaxRetries = 1000;
inline constexpr int64_t kMaxRetryDelayMs = 3600000;
inline constexpr int64_t kDefaultRetryDelayMs = 1000;
// A day: a longer deadline is a typo, not a plan.
inline constexpr int64_t kMaxDeadlineMs = 86400000;
inline constexpr absl::string_view kReadinessAgent = "agent";
inline constexpr absl::string_view kReadinessWorkload = "workload";

// Checks a topology against every rule of docs/architecture.md ("Topology and plan") and
// fills in defaults. Pure; thread-compatible (stateless).
class TopologyValidator {
 public:
  // Returns the normalized topology: method "split" when empty, backend "cpu:gloo" when empty,
  // one group kind per dim of `dims` when `groups` is empty, each group's backend inherited from
  // the topology's when empty, validation.allreduce_elements defaulted, world_size filled in,
  // elastic defaults filled in (replica dim "dp" when there is one, min 1, max its size, heartbeat
  // 2 s, lease 5 heartbeats). `readiness` must be "", "agent" or "workload" and is kept as given:
  // "" means "agent" (see Readiness), and leaving it empty keeps the normalized encoding of
  // documents that predate the field byte for byte, so re-applying them is still a no-op.
  // `preflight` and `deadlines` are kept as given too (unset preflight means true; each deadline in
  // [0, kMaxDeadlineMs], 0 meaning none). Any violation gives INVALID_ARGUMENT with a message that
  // starts with the field path and names the offending value, e.g. `dims[1].size must be >= 1, got
  // 0`. Overlapping explicit lists are refused here (one rank bitmap, O(world)); the rule that
  // needs the expanded groups (`local: node` crossing a node boundary) is checked by
  // SplitPlanner::Build. Explicit lists come back in canonical order (sorted by first member,
  // each list's own order kept), so list i of the normalized topology is group i of the plan.
  static absl::StatusOr<v1::Topology> Normalize(const v1::Topology& topology);

  // How long a member whose plan stream closed may take to open one again before it is lost:
  // elastic.stream_grace_ms; when unset kDefaultStreamGraceMs, or the lease if that is shorter;
  // zero when turned off.
  static absl::Duration StreamGrace(const v1::Topology& topology) {
    const v1::Elastic& elastic = topology.elastic();
    if (elastic.has_stream_grace_ms()) return absl::Milliseconds(elastic.stream_grace_ms());
    return absl::Milliseconds(std::min(kDefaultStreamGraceMs, elastic.lease_timeout_ms()));
  }

  // How long after a FAILED epoch its layout starts again (elastic.retries):
  // elastic.retry_delay_ms, or kDefaultRetryDelayMs when 0.
  static absl::Duration RetryDelay(const v1::Topology& topology) {
    const int64_t ms = topology.elastic().retry_delay_ms();
    return absl::Milliseconds(ms > 0 ? ms : kDefaultRetryDelayMs);
  }

  // What READY waits for: kReadinessWorkload or kReadinessAgent (also for an empty field).
  static absl::string_view Readiness(const v1::Topology& topology) {
    return topology.readiness() == kReadinessWorkload ? kReadinessWorkload : kReadinessAgent;
  }
};

}  // namespace splitd::plan

#endif  // SPLITD_PLAN_TOPOLOGY_VALIDATOR_H_
