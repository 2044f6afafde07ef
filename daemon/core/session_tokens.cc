#include "daemon/core/session_tokens.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/same_secret.h"
#include "common/sha256.h"

namespace splitd::core {

void SessionTokens::Add(const Member* member) {
  auto held = digest_of_.find(member);
  if (held != digest_of_.end()) by_digest_.erase(held->second);
  by_digest_[member->session_token_sha256] = member;
  digest_of_[member] = member->session_token_sha256;
}

std::string SessionTokens::Digest(const std::string& token) { return Sha256::Hex(token); }

const Member* SessionTokens::Holder(const std::string& token) const {
  auto it = by_digest_.find(Sha256::Hex(token));
  return it == by_digest_.end() ? nullptr : it->second;
}

absl::Status SessionTokens::Check(const std::string& member_id, const std::string& session_token,
                                  const Member* member, const std::string& cluster) {
  if (member_id.empty()) {
    return absl::InvalidArgumentError("member.member_id must not be empty");
  }
  if (session_token.empty()) {
    return absl::UnauthenticatedError("member.session_token must not be empty");
  }
  if (member == nullptr) {
    return absl::NotFoundError(absl::StrCat("member \"", absl::CHexEscape(member_id),
                                            "\" is not registered in cluster \"", cluster, "\""));
  }
  if (!SameSecret(member->session_token_sha256, Digest(session_token))) {
    return absl::UnauthenticatedError(
        absl::StrCat("member.session_token is wrong for member ", member_id));
  }
  return absl::OkStatus();
}

}  // namespace splitd::core
