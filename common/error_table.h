#ifndef SPLITD_COMMON_ERROR_TABLE_H_
#define SPLITD_COMMON_ERROR_TABLE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace splitd {

// What an agent does when a call to the daemon fails.
enum class AgentAction {
  kWaitForDaemon,  // the daemon is away: back off and call again, for as long as it takes
  kRetry,          // back off and call again, a bounded number of times
  kRegisterAgain,  // the session is gone (lease expired, daemon state lost): register again
  kNextEpoch,      // the call's epoch is over: drop it and follow the newer plan
  kGiveUp,         // only an operator can fix it: fail with the daemon's message
};

// One status code the daemon returns: when, and what each kind of caller does about it. The
// daemon's services, the agent, the workload endpoint and splitctl read their decisions from
// here, and docs/operating.md's "Errors" table is this table (checked by a test).
struct ErrorCode {
  absl::StatusCode code;
  absl::string_view when;           // the conditions, as the operator docs state them
  absl::string_view caller_should;  // what any caller should do
  AgentAction on_register;          // an agent's Register failed with it
  AgentAction on_session_call;      // a call that carries a session (heartbeat, report, store)
  int http_status;                  // the agent's workload endpoint answers with this
  absl::string_view splitctl_hint;  // added to splitctl's error line; may be empty
};

// Every code the daemon returns, in the order the operator docs list them.
absl::Span<const ErrorCode> DaemonErrorCodes();

// The entry of `code`; a code the daemon never returns gets an entry whose actions give up and
// whose HTTP status is 500 (200 for OK).
const ErrorCode& DaemonErrorCode(absl::StatusCode code);

// The "code | when | the caller should" Markdown table of docs/operating.md, one row per entry.
std::string RenderErrorTableMarkdown();

}  // namespace splitd

#endif  // SPLITD_COMMON_ERROR_TABLE_H_
