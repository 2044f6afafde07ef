#ifndef SPLITD_WORKER_AGENT_INTERNAL_H_
#define SPLITD_WORKER_AGENT_INTERNAL_H_

// Helpers shared by the agent's source files (agent*.cc); not part of the agent's interface.

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/error_table.h"

namespace splitd::worker::agent_internal {

// The daemon no longer knows these credentials (lease expired, daemon state lost): register
// again with the same incarnation.
inline bool SessionLost(absl::StatusCode code) {
  return DaemonErrorCode(code).on_session_call == AgentAction::kRegisterAgain;
}

// The call's epoch is over: the daemon has moved on to a newer plan.
inline bool EpochOver(const absl::Status& status) {
  return DaemonErrorCode(status.code()).on_session_call == AgentAction::kNextEpoch;
}

inline double Millis(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

}  // namespace splitd::worker::agent_internal

#endif  // SPLITD_WORKER_AGENT_INTERNAL_H_
