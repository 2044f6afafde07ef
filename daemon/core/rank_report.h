#ifndef SPLITD_DAEMON_CORE_RANK_REPORT_H_
#define SPLITD_DAEMON_CORE_RANK_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "splitd/v1/agent_service.pb.h"
#include "splitd/v1/status.pb.h"

namespace splitd::core {

// How long each phase took on a rank so far, as the rank measured it: durations in
// milliseconds, and wall-clock instants (Unix epoch, milliseconds) that line the phases up
// across ranks. 0 for a part not reached.
struct RankTimings {
  double bootstrap_ms = 0;           // plan received -> world connected
  double split_ms = 0;               // world connected -> every group formed
  double validate_ms = 0;            // groups formed -> every validation done
  double groups_ready_ms = 0;        // plan received -> every group validated
  double plan_received_unix_ms = 0;  // the plan's arrival
  double world_connected_unix_ms = 0;
  double groups_ready_unix_ms = 0;
};

// One rank's report of its progress in the current epoch, as the core checks and records it
// (Membership::Report, EpochReadiness): from the rank's agent about the communicators it formed
// itself, from its workload (relayed by the agent), or written by the daemon for a rank past
// its deadline (StallFinder). It holds what was sent, unchecked: Membership::CheckReport and
// EpochReadiness::Check refuse what is malformed, naming the field. A plain value; the daemon
// converts the agents' requests to it and a stall's report back for the store
// (daemon/report_conversion.h).
struct RankReport {
  // What the rank reported about its group of one kind: for the agent layer one entry per
  // kind and backend part, for the workload layer one per kind.
  struct Group {
    std::string kind;
    std::string backend;  // agent layer: the part of the kind's backend this entry is about
    v1::Phase phase = v1::PHASE_UNSPECIFIED;
    double allreduce_value = 0;  // the validation all-reduce of ones: the group size when right
    double latency_us = 0;
    double bus_bandwidth_gbps = 0;  // 0 when not measured
    std::string error;              // what went wrong, when FAILED
  };

  std::string member_id;      // the sender; it must hold `rank`
  std::string session_token;  // the sender's credential; empty in the daemon's own reports
  int64_t epoch = 0;
  int64_t rank = -1;
  std::string fingerprint;  // of the plan the rank derived
  v1::Phase phase = v1::PHASE_UNSPECIFIED;
  // UNSPECIFIED: the agent's own groups; WORKLOAD: the workload's. Other values are refused.
  v1::ReportLayer layer = v1::REPORT_LAYER_UNSPECIFIED;
  std::string error;   // what went wrong, when FAILED
  std::string detail;  // what the rank is doing within its phase ("creating tp")
  std::vector<Group> groups;
  RankTimings timings;  // recorded for the agent layer
};

}  // namespace splitd::core

#endif  // SPLITD_DAEMON_CORE_RANK_REPORT_H_
