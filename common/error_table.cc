#include "common/error_table.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace splitd {
namespace {

using Code = absl::StatusCode;
using A = AgentAction;

// Register retries while the daemon is away (UNAVAILABLE, DEADLINE_EXCEEDED), the cluster is not
// applied yet (NOT_FOUND) or an earlier process still holds the device slot until its lease
// expires (ALREADY_EXISTS). A call with a session registers again when the daemon no longer
// knows the session (NOT_FOUND, PERMISSION_DENIED, UNAUTHENTICATED).
constexpr ErrorCode kTable[] = {
    {Code::kInvalidArgument,
     "a malformed topology, change or request; the message starts with the field path "
     "(`elastic.min must be in [1, 4] ...`, `change.exclude_ranks[0] = 9 is not a rank ...`)",
     "fix the named field; the same request fails again", A::kGiveUp, A::kGiveUp, 400, ""},
    {Code::kOutOfRange, "a rendezvous counter (`add`) would overflow a signed 64-bit integer",
     "use another key or reset the counter", A::kGiveUp, A::kGiveUp, 400, ""},
    {Code::kNotFound, "no such cluster (or member)",
     "check the name; an agent retries Register until the cluster is applied, and registers "
     "again when its member is unknown",
     A::kRetry, A::kRegisterAgain, 404, ""},
    {Code::kAborted,
     "`reconfigure` with an epoch that is no longer current; a report or rendezvous call for an "
     "epoch that is over",
     "read the current epoch and act on it", A::kGiveUp, A::kNextEpoch, 409, ""},
    {Code::kFailedPrecondition,
     "a reconfiguration the live members cannot meet, or before ranks are assigned; an "
     "excluded member registering again",
     "change the cluster (apply, reconfigure) or wait until ranks are assigned", A::kGiveUp,
     A::kGiveUp, 409, ""},
    {Code::kAlreadyExists, "another live process holds this node's device slot",
     "stop the other process, or wait until its lease expires (agents retry)", A::kRetry,
     A::kGiveUp, 409, ""},
    {Code::kPermissionDenied,
     "an agent acting for a rank it does not hold, or an excluded member; a valid token used "
     "outside its scope: an observer token for a change, an agent's token on the "
     "ControlService, a control token or another cluster's join token on Register, another "
     "member's session (docs/security.md)",
     "use a token whose scope allows the call; an agent registers again", A::kGiveUp,
     A::kRegisterAgain, 403, ""},
    {Code::kUnauthenticated,
     "a missing or unknown token: no `authorization: Bearer` header when the daemon has "
     "`--admin_token_file`, a wrong join token, a missing or unknown session token",
     "give a valid token; an agent registers again when its session is unknown", A::kGiveUp,
     A::kRegisterAgain, 401, "give --token_file or $SPLITD_TOKEN_FILE"},
    {Code::kResourceExhausted,
     "a request too large, too many spares, a rendezvous space over its byte limit, or the "
     "data directory's disk is full (nothing was changed)",
     "send less, or free space; the same request fails again until then", A::kGiveUp, A::kRetry,
     413, ""},
    {Code::kUnavailable,
     "the daemon is starting (state not loaded) or stopping, a stream write failed, a state "
     "write failed (nothing was changed), or the daemon is unreachable",
     "retry with backoff", A::kWaitForDaemon, A::kWaitForDaemon, 503, ""},
    {Code::kDeadlineExceeded,
     "a rendezvous get or wait whose keys were not set before its deadline; a call that took "
     "longer than the caller's deadline",
     "retry, or find the rank that did not set its keys (`splitctl status`)", A::kRetry, A::kRetry,
     504, ""},
    {Code::kCancelled, "the caller cancelled the call, or a waiting call's client went away",
     "nothing: the caller asked for it", A::kGiveUp, A::kRetry, 499, ""},
    {Code::kDataLoss,
     "at start: the store is damaged in the middle (the daemon refuses to start rather than "
     "drop state)",
     "restore the data directory from a backup, or move it aside to start empty", A::kGiveUp,
     A::kGiveUp, 500, ""},
};

constexpr ErrorCode kOk = {Code::kOk, "", "", A::kGiveUp, A::kGiveUp, 200, ""};
constexpr ErrorCode kUnlisted = {Code::kUnknown, "", "", A::kGiveUp, A::kGiveUp, 500, ""};

}  // namespace

absl::Span<const ErrorCode> DaemonErrorCodes() { return kTable; }

const ErrorCode& DaemonErrorCode(absl::StatusCode code) {
  if (code == Code::kOk) return kOk;
  for (const ErrorCode& entry : kTable) {
    if (entry.code == code) return entry;
  }
  return kUnlisted;
}

std::string RenderErrorTableMarkdown() {
  std::string out = "| code | when | the caller should |\n|---|---|---|\n";
  for (const ErrorCode& entry : kTable) {
    absl::StrAppend(&out, "| `", absl::StatusCodeToString(entry.code), "` | ", entry.when, " | ",
                    entry.caller_should, " |\n");
  }
  return out;
}

}  // namespace splitd
