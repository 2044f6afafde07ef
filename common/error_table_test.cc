#include "common/error_table.h"

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

namespace splitd {
namespace {

TEST(ErrorTableTest, EveryCodeAppearsOnceAndNeverOk) {
  std::set<absl::StatusCode> seen;
  for (const ErrorCode& entry : DaemonErrorCodes()) {
    EXPECT_NE(entry.code, absl::StatusCode::kOk);
    EXPECT_TRUE(seen.insert(entry.code).second) << absl::StatusCodeToString(entry.code);
    EXPECT_FALSE(entry.when.empty()) << absl::StatusCodeToString(entry.code);
    EXPECT_FALSE(entry.caller_should.empty()) << absl::StatusCodeToString(entry.code);
    EXPECT_GE(entry.http_status, 400);
    EXPECT_EQ(&DaemonErrorCode(entry.code), &entry);
  }
  for (absl::StatusCode code : {absl::StatusCode::kOutOfRange, absl::StatusCode::kDeadlineExceeded,
                                absl::StatusCode::kCancelled}) {
    EXPECT_EQ(seen.count(code), 1u) << absl::StatusCodeToString(code);
  }
}

TEST(ErrorTableTest, AgentDecisions) {
  auto on_register = [](absl::StatusCode code) { return DaemonErrorCode(code).on_register; };
  auto on_session = [](absl::StatusCode code) { return DaemonErrorCode(code).on_session_call; };
  EXPECT_EQ(on_register(absl::StatusCode::kNotFound), AgentAction::kRetry);
  EXPECT_EQ(on_register(absl::StatusCode::kAlreadyExists), AgentAction::kRetry);
  EXPECT_EQ(on_register(absl::StatusCode::kUnavailable), AgentAction::kWaitForDaemon);
  EXPECT_EQ(on_register(absl::StatusCode::kPermissionDenied), AgentAction::kGiveUp);
  EXPECT_EQ(on_register(absl::StatusCode::kInvalidArgument), AgentAction::kGiveUp);
  EXPECT_EQ(on_session(absl::StatusCode::kNotFound), AgentAction::kRegisterAgain);
  EXPECT_EQ(on_session(absl::StatusCode::kUnauthenticated), AgentAction::kRegisterAgain);
  EXPECT_EQ(on_session(absl::StatusCode::kAborted), AgentAction::kNextEpoch);
  EXPECT_EQ(on_session(absl::StatusCode::kUnavailable), AgentAction::kWaitForDaemon);
}

TEST(ErrorTableTest, UnlistedCodes) {
  EXPECT_EQ(DaemonErrorCode(absl::StatusCode::kOk).http_status, 200);
  EXPECT_EQ(DaemonErrorCode(absl::StatusCode::kInternal).http_status, 500);
  EXPECT_EQ(DaemonErrorCode(absl::StatusCode::kInternal).on_register, AgentAction::kGiveUp);
  EXPECT_EQ(DaemonErrorCode(absl::StatusCode::kUnauthenticated).http_status, 401);
}

// docs/operating.md's "Errors" section holds exactly the rendered table.
TEST(ErrorTableTest, OperatingDocMatches) {
  std::ifstream file("docs/operating.md");
  ASSERT_TRUE(file.good()) << "docs/operating.md not in the runfiles";
  std::stringstream buffer;
  buffer << file.rdbuf();
  const std::string doc = buffer.str();
  const size_t section = doc.find("\n## Errors\n");
  ASSERT_NE(section, std::string::npos);
  const size_t start = doc.find("\n| code |", section);
  ASSERT_NE(start, std::string::npos);
  size_t end = doc.find("\n\n", start + 1);
  if (end == std::string::npos) end = doc.size();
  const std::string table = doc.substr(start + 1, end - start);
  EXPECT_EQ(table, RenderErrorTableMarkdown())
      << "regenerate docs/operating.md's table from common/error_table.cc";
}

}  // namespace
}  // namespace splitd
