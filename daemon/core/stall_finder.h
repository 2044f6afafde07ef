#ifndef SPLITD_DAEMON_CORE_STALL_FINDER_H_
#define SPLITD_DAEMON_CORE_STALL_FINDER_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "daemon/core/epoch_readiness.h"
#include "daemon/core/member_registry.h"
#include "daemon/core/rank_report.h"
#include "plan/split_plan.h"
#include "splitd/v1/agent_service.pb.h"
#include "splitd/v1/status.pb.h"
#include "splitd/v1/topology.pb.h"

namespace splitd::core {

// A rank that stayed in one phase past its deadline, and the FAILED report that records it
// (layer, rank, plan fingerprint, the rank's member id without a session token, `reason` as its
// error), to be made durable and applied like the rank's own failure report.
struct Stall {
  int64_t rank = -1;
  const Member* member = nullptr;
  v1::ReportLayer layer = v1::REPORT_LAYER_UNSPECIFIED;
  v1::Phase phase = v1::PHASE_UNSPECIFIED;  // the phase it is stuck in
  std::string reason;
  RankReport report;
};

// Finds the rank that holds an epoch past the topology's deadlines. Pure: time is an
// argument. Stateless.
class StallFinder {
 public:
  // The slowest rank past a deadline at `now` (agent layer before workload layer, then the
  // earlier phase, then the lower rank), or nullopt. Agent PLANNED and BOOTSTRAPPING count
  // against bootstrap_ms from when the ranks were assigned, SPLITTING against split_ms and
  // VALIDATING against validate_ms from their own start; with readiness "workload", a workload
  // short of READY counts against workload_ms from the later of its phase's start and its
  // agent's READY. 0 is no deadline. Ranks of excluded members are skipped (the elastic policy
  // replaces them), as is everything before ranks are assigned and after FAILED or DEGRADED.
  static std::optional<Stall> Find(const plan::SplitPlan& plan, const MemberRegistry& members,
                                   const EpochReadiness& readiness, absl::Time now,
                                   const v1::Deadlines& deadlines);
};

}  // namespace splitd::core

#endif  // SPLITD_DAEMON_CORE_STALL_FINDER_H_
