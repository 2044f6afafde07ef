#ifndef SPLITD_DAEMON_CORE_SESSION_TOKENS_H_
#define SPLITD_DAEMON_CORE_SESSION_TOKENS_H_

#include <string>
#include <unordered_map>

#include "absl/status/status.h"
#include "daemon/core/member_registry.h"
#include "splitd/v1/agent_service.pb.h"

namespace splitd::core {

// The members' credentials: the session token each member got at registration, checked on
// every later call by its SHA-256 digest (the store keeps only the digest), and looked up by
// that digest so that a lookup's timing says nothing about the token. Pure: no I/O.
// Thread-compatible. The `Member`s it points at are the MemberRegistry's and must outlive it.
class SessionTokens {
 public:
  // `member` holds the token whose digest is its session_token_sha256 from now on; a digest it
  // held before is forgotten.
  void Add(const Member* member);

  // The digest of `token`: what the store keeps and what calls are checked by.
  static std::string Digest(const std::string& token);

  // The member whose session token is `token`, if any.
  const Member* Holder(const std::string& token) const;

  // Checks `credentials` against `member`, the member their id names in `cluster` (nullptr
  // for none). INVALID_ARGUMENT for a missing member id, UNAUTHENTICATED for a missing or
  // wrong token, NOT_FOUND for an unknown member (in that order of checks).
  static absl::Status Check(const v1::MemberCredentials& credentials, const Member* member,
                            const std::string& cluster) {
    return Check(credentials.member_id(), credentials.session_token(), member, cluster);
  }
  // The same checks of a member id and session token given apart.
  static absl::Status Check(const std::string& member_id, const std::string& session_token,
                            const Member* member, const std::string& cluster);

 private:
  std::unordered_map<std::string, const Member*> by_digest_;
  std::unordered_map<const Member*, std::string> digest_of_;
};

}  // namespace splitd::core

#endif  // SPLITD_DAEMON_CORE_SESSION_TOKENS_H_
