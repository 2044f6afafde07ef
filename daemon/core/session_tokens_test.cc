#include "daemon/core/session_tokens.h"

#include <string>

#include "absl/status/status.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace splitd::core {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::HasSubstr;

v1::MemberCredentials Credentials(const std::string& member_id, const std::string& token) {
  v1::MemberCredentials credentials;
  credentials.set_cluster("demo");
  credentials.set_member_id(member_id);
  credentials.set_session_token(token);
  return credentials;
}

TEST(SessionTokensTest, HolderIsFoundByToken) {
  Member member;
  member.member_id = "m-0";
  member.session_token_sha256 = SessionTokens::Digest("secret");
  SessionTokens tokens;
  tokens.Add(&member);
  EXPECT_EQ(tokens.Holder("secret"), &member);
  EXPECT_EQ(tokens.Holder("other"), nullptr);
  EXPECT_EQ(tokens.Holder(""), nullptr);
}

TEST(SessionTokensTest, ANewTokenReplacesTheMembersOldOne) {
  Member member;
  member.session_token_sha256 = SessionTokens::Digest("old");
  SessionTokens tokens;
  tokens.Add(&member);
  member.session_token_sha256 = SessionTokens::Digest("new");
  tokens.Add(&member);
  EXPECT_EQ(tokens.Holder("new"), &member);
  EXPECT_EQ(tokens.Holder("old"), nullptr);
}

TEST(SessionTokensTest, DigestIsLowercaseHexSha256) {
  EXPECT_EQ(SessionTokens::Digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(SessionTokensTest, CheckNamesWhatIsWrongInOrder) {
  Member member;
  member.member_id = "m-0";
  member.session_token_sha256 = SessionTokens::Digest("secret");
  EXPECT_THAT(SessionTokens::Check(Credentials("m-0", "secret"), &member, "demo"), IsOk());
  EXPECT_THAT(SessionTokens::Check(Credentials("", ""), nullptr, "demo"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("member.member_id")));
  EXPECT_THAT(SessionTokens::Check(Credentials("m-0", ""), &member, "demo"),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       HasSubstr("member.session_token must not be empty")));
  EXPECT_THAT(SessionTokens::Check(Credentials("m-9", "secret"), nullptr, "demo"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("member \"m-9\" is not registered in cluster \"demo\"")));
  EXPECT_THAT(SessionTokens::Check(Credentials("m-0", "wrong"), &member, "demo"),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       HasSubstr("member.session_token is wrong for member m-0")));
}

}  // namespace
}  // namespace splitd::core
