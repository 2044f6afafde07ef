#ifndef SPLITD_DAEMON_AUTHORIZER_H_
#define SPLITD_DAEMON_AUTHORIZER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "daemon/coordinator.h"
#include "grpcpp/server_context.h"

namespace splitd::daemon {

// The bearer token a call carries in its "authorization" metadata. nullopt: the call carries no
// authorization header. A header that is not "Bearer <token>" yields an empty string, which no
// credential matches.
std::optional<std::string> BearerToken(const grpc::ServerContextBase& context);

// A file of tokens (common/bearer_token.h: one per line, several during a rotation), read again
// when it changes: at most once per `recheck` a call looks at the file's modification time,
// size and inode. A file that becomes unreadable or invalid keeps the tokens last read (and is
// logged, without any token). Holds SHA-256 digests only.
//
// Threading: thread-safe.
class TokenFile {
 public:
  // Reads `path` now; INVALID_ARGUMENT naming `flag` and the file when it cannot be read or
  // holds no valid token.
  static absl::StatusOr<std::unique_ptr<TokenFile>> Load(std::string path, std::string flag,
                                                         const Clock* clock,
                                                         absl::Duration recheck);

  // True when `token` is one of the file's tokens.
  bool Contains(const std::string& token) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Stamp {
    int64_t mtime_nanos = 0;
    int64_t size = 0;
    uint64_t inode = 0;
    bool operator==(const Stamp& other) const {
      return mtime_nanos == other.mtime_nanos && size == other.size && inode == other.inode;
    }
  };
  TokenFile(std::string path, std::string flag, const Clock* clock, absl::Duration recheck)
      : path_(std::move(path)), flag_(std::move(flag)), clock_(clock), recheck_(recheck) {}

  // Reads the file; on success replaces the digests.
  absl::Status Read(Stamp stamp) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeReload() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::optional<Stamp> StatFile() const;

  const std::string path_;
  const std::string flag_;
  const Clock* const clock_;
  const absl::Duration recheck_;
  absl::Mutex mu_;
  std::vector<std::string> digests_ ABSL_GUARDED_BY(mu_);
  Stamp stamp_ ABSL_GUARDED_BY(mu_);
  absl::Time checked_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// Which ControlService calls a token may make.
enum class ControlRole {
  kNone,      // not a control token
  kObserver,  // reads: GetCluster, ListClusters, GetPlan, GetStatus, WatchEvents
  kAdmin,     // everything
};

// Which credential a method needs.
enum class Scope {
  kControlRead,    // the admin or observer token, when tokens are on
  kControlChange,  // the admin token, when tokens are on
  kJoin,           // the cluster's join token, when the cluster has one; no control token
  kSession,        // the member's session token, in the request's MemberCredentials
};

// Decides whether a call of the daemon's services may proceed, and with which status code when
// it may not: UNAUTHENTICATED for a missing or unknown token, PERMISSION_DENIED for a valid token
// used outside its scope (docs/security.md). Holds the control tokens (--admin_token_file,
// --observer_token_file) and asks the Coordinator for facts about agent tokens: a cluster's join
// token digest (Coordinator::JoinTokenDigest) and whether a token belongs to an agent at all. A
// member's session token travels in its request and is checked by the Coordinator with the call
// itself, once; such calls are allowed here.
//
// Without an admin token file the ControlService is open to every caller that reaches the port
// and clusters need no join token; with one, every ControlService call needs a control token and
// every cluster a join token.
//
// Threading: thread-safe.
class Authorizer {
 public:
  struct Options {
    std::string admin_token_file;
    std::string observer_token_file;  // needs admin_token_file
    absl::Duration recheck = absl::Seconds(1);
    // A replica of several (--etcd_endpoints): OK while it leads; every call is refused with
    // its error (UNAVAILABLE) once it does not.
    std::function<absl::Status()> may_serve;
  };

  // One call to decide on.
  struct Call {
    absl::string_view service;         // "splitd.v1.ControlService"
    absl::string_view method;          // "Reconfigure"
    std::optional<std::string> token;  // BearerToken of the call
    std::string cluster;               // Register: the cluster it joins
    bool dry_run = false;              // Reconfigure: a preview, which changes nothing
  };

  // Reads the files; INVALID_ARGUMENT naming the flag at fault. `coordinator` (which keeps join
  // tokens and sessions) must outlive the Authorizer; without one every Register is refused
  // and no token counts as an agent's.
  static absl::StatusOr<std::unique_ptr<Authorizer>> Create(
      const Options& options, const Clock* clock, const Coordinator* coordinator = nullptr);

  // The credential `method` of `service` needs; PERMISSION_DENIED for a method without a rule,
  // so that a new method is refused until it has one.
  static absl::StatusOr<Scope> ScopeOf(absl::string_view service, absl::string_view method,
                                       bool dry_run);

  // OK when `call` may proceed; otherwise the status to answer it with, naming the method and
  // never quoting the token.
  absl::Status Authorize(const Call& call) const;

  // True when calls need tokens (an admin token file was given).
  bool enabled() const { return admin_ != nullptr; }

  // True when ApplyTopology must leave every cluster with a join token.
  bool JoinTokenRequired() const { return enabled(); }

  // What `token` may do on the ControlService.
  ControlRole RoleOf(const std::string& token) const;

 private:
  Authorizer() = default;
  absl::Status AuthorizeControl(const Call& call, bool changes_state) const;
  absl::Status AuthorizeJoin(const Call& call) const;

  std::function<absl::Status()> may_serve_;
  std::unique_ptr<TokenFile> admin_;
  std::unique_ptr<TokenFile> observer_;
  const Coordinator* coordinator_ = nullptr;
};

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_AUTHORIZER_H_
