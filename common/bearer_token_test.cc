#include "common/bearer_token.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace splitd {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::IsOkAndHolds;
using ::splitd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(SameSecretTest, ComparesContentAndLength) {
  EXPECT_TRUE(SameSecret("abcdef", "abcdef"));
  EXPECT_FALSE(SameSecret("abcdef", "abcdeg"));
  EXPECT_FALSE(SameSecret("abcdef", "abcde"));
  EXPECT_TRUE(SameSecret("", ""));
}

TEST(CheckTokenTextTest, AcceptsPrintableTokensOfSensibleLength) {
  EXPECT_THAT(CheckTokenText("0123456789abcdef", "f"), IsOk());
  EXPECT_THAT(CheckTokenText(std::string(kMaxTokenLength, 'x'), "f"), IsOk());
}

TEST(CheckTokenTextTest, RefusesShortLongAndSpacedTokensWithoutQuotingThem) {
  EXPECT_THAT(
      CheckTokenText("short-secret", "join_token"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("join_token: a token must be 16 to 1024 characters long, got 12")));
  EXPECT_THAT(CheckTokenText("short-secret", "join_token"),
              StatusIs(absl::StatusCode::kInvalidArgument, Not(HasSubstr("short-secret"))));
  EXPECT_THAT(CheckTokenText(std::string(kMaxTokenLength + 1, 'x'), "f"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(CheckTokenText("has a space in the middle", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("without spaces")));
  EXPECT_THAT(CheckTokenText(std::string("0123456789abcdef\x01", 17), "f"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ParseTokenFileTest, SkipsCommentsAndBlankLinesAndTrims) {
  EXPECT_THAT(ParseTokenFile("# rotation: new first\n  new-token-0123456789  \n\n"
                             "old-token-0123456789\r\n",
                             "/etc/admin"),
              IsOkAndHolds(ElementsAre("new-token-0123456789", "old-token-0123456789")));
}

TEST(ParseTokenFileTest, NamesTheFileAndLineOfABadToken) {
  EXPECT_THAT(ParseTokenFile("good-token-0123456789\nbad\n", "/etc/admin"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("/etc/admin:2: a token")));
  EXPECT_THAT(
      ParseTokenFile("# only a comment\n\n", "/etc/admin"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("/etc/admin: holds no token")));
}

TEST(ReadTokenFileTest, ReadsOneTokenAndNamesTheFlagOnErrors) {
  const std::string dir = ::testing::TempDir();
  const std::string one = dir + "/one_token";
  std::ofstream(one) << "the-only-token-0123456789\n";
  EXPECT_THAT(ReadTokenFile(one, "token_file"),
              IsOkAndHolds(std::string("the-only-token-0123456789")));

  const std::string two = dir + "/two_tokens";
  std::ofstream(two) << "first-token-0123456789\nsecond-token-0123456789\n";
  EXPECT_THAT(ReadTokenFile(two, "token_file"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--token_file: " + two + " holds 2 tokens; give one")));
  EXPECT_THAT(ReadTokenFile(dir + "/missing", "join_token_file"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--join_token_file: cannot read " + dir + "/missing")));
}

}  // namespace
}  // namespace splitd
