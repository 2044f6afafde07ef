#include "daemon/authorizer.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace splitd::daemon {
namespace {

using ::splitd::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kAdmin[] = "admin-token-0123456789";
constexpr char kAdminNext[] = "admin-token-next-0123456789";
constexpr char kObserver[] = "observer-token-0123456789";

std::string WriteFile(const std::string& name, const std::string& contents) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::trunc) << contents;
  return path;
}

TEST(AuthorizerTest, WithoutAnAdminTokenFileNothingIsRequired) {
  FakeClock clock;
  auto authorizer = Authorizer::Create({}, &clock);
  ASSERT_TRUE(authorizer.ok()) << authorizer.status();
  EXPECT_FALSE((*authorizer)->enabled());
  EXPECT_EQ((*authorizer)->RoleOf(kAdmin), ControlRole::kNone);
}

TEST(AuthorizerTest, TellsAdminObserverAndUnknownTokensApart) {
  FakeClock clock;
  Authorizer::Options options;
  options.admin_token_file = WriteFile("roles_admin", std::string(kAdmin) + "\n");
  options.observer_token_file = WriteFile("roles_observer", std::string(kObserver) + "\n");
  auto authorizer = Authorizer::Create(options, &clock);
  ASSERT_TRUE(authorizer.ok()) << authorizer.status();
  EXPECT_TRUE((*authorizer)->enabled());
  EXPECT_EQ((*authorizer)->RoleOf(kAdmin), ControlRole::kAdmin);
  EXPECT_EQ((*authorizer)->RoleOf(kObserver), ControlRole::kObserver);
  EXPECT_EQ((*authorizer)->RoleOf("someone-elses-token-012345"), ControlRole::kNone);
  EXPECT_EQ((*authorizer)->RoleOf(""), ControlRole::kNone);
  EXPECT_EQ((*authorizer)->RoleOf(std::string(kAdmin) + "x"), ControlRole::kNone);
}

TEST(AuthorizerTest, RefusesBadFilesNamingTheFlag) {
  FakeClock clock;
  Authorizer::Options observer_only;
  observer_only.observer_token_file = WriteFile("observer_only", std::string(kObserver) + "\n");
  EXPECT_THAT(Authorizer::Create(observer_only, &clock),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--observer_token_file needs --admin_token_file")));

  Authorizer::Options missing;
  missing.admin_token_file = ::testing::TempDir() + "/no_such_token_file";
  EXPECT_THAT(Authorizer::Create(missing, &clock),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--admin_token_file: cannot read")));

  Authorizer::Options weak;
  weak.admin_token_file = WriteFile("weak_admin", "short\n");
  EXPECT_THAT(Authorizer::Create(weak, &clock),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--admin_token_file: " + weak.admin_token_file + ":1: a token")));
}

TEST(TokenFileTest, PicksUpARotationAfterTheRecheckIntervalAndKeepsTokensOnABadEdit) {
  FakeClock clock;
  const std::string path = WriteFile("rotating", std::string(kAdmin) + "\n");
  auto file = TokenFile::Load(path, "admin_token_file", &clock, absl::Seconds(1));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE((*file)->Contains(kAdmin));

  // Rotation: the new token is added, then the old one removed.
  WriteFile("rotating", std::string(kAdminNext) + "\n# the old one, until clients move\n" +
                            kAdmin + "\n");
  EXPECT_FALSE((*file)->Contains(kAdminNext)) << "looked at again before the interval";
  clock.Advance(absl::Seconds(1));
  EXPECT_TRUE((*file)->Contains(kAdminNext));
  EXPECT_TRUE((*file)->Contains(kAdmin));

  WriteFile("rotating", std::string(kAdminNext) + "\n");
  clock.Advance(absl::Seconds(1));
  EXPECT_TRUE((*file)->Contains(kAdminNext));
  EXPECT_FALSE((*file)->Contains(kAdmin));

  // A broken edit (no token left) does not lock everyone out, nor does a removed file.
  WriteFile("rotating", "# emptied by mistake, longer than before to change the size\n");
  clock.Advance(absl::Seconds(1));
  EXPECT_TRUE((*file)->Contains(kAdminNext));
  std::remove(path.c_str());
  clock.Advance(absl::Seconds(1));
  EXPECT_TRUE((*file)->Contains(kAdminNext));
}

}  // namespace
}  // namespace splitd::daemon
