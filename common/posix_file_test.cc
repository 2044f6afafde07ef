#include "common/posix_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_files.h"

namespace splitd {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(PosixErrorTest, CodeFollowsErrnoAndMessageNamesThePath) {
  EXPECT_THAT(PosixError(ENOENT, "open", "/x/y"),
              StatusIs(absl::StatusCode::kNotFound, "open /x/y: No such file or directory"));
  EXPECT_THAT(PosixError(ENOSPC, "write", "/d/log"),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("write /d/log: ")));
  EXPECT_THAT(PosixError(EACCES, "create", "/d"), StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST(ReplaceFileTest, ReplacesAndLeavesNoTemporaryFile) {
  const std::string dir = testing::MakeTempDir("posix_file");
  const std::string path = dir + "/port";
  ASSERT_THAT(WriteFileAtomically(path, "one\n"), IsOk());
  ASSERT_THAT(WriteFileAtomically(path, "two\n"), IsOk());
  EXPECT_EQ(testing::ReadFileBytes(path), "two\n");
  EXPECT_THAT(testing::ListDir(dir), ElementsAre("port"));
  struct stat info;
  ASSERT_EQ(stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0644u);
}

TEST(ReplaceFileTest, ModeAndFixedTemporaryName) {
  const std::string dir = testing::MakeTempDir("posix_file");
  const std::string path = dir + "/log";
  ReplaceFileOptions options;
  options.mode = 0600;
  options.unique_temp = false;
  options.keep_open = true;
  absl::StatusOr<int> fd = ReplaceFile(path, "header", options);
  ASSERT_THAT(fd.status(), IsOk());
  ASSERT_GE(*fd, 0);
  EXPECT_EQ(WriteAllAt(*fd, 6, "+more"), 0);
  close(*fd);
  EXPECT_EQ(testing::ReadFileBytes(path), "header+more");
  struct stat info;
  ASSERT_EQ(stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_THAT(testing::ListDir(dir), ElementsAre("log"));
}

TEST(ReplaceFileTest, MissingDirectoryNamesThePathAndChangesNothing) {
  const std::string dir = testing::MakeTempDir("posix_file");
  EXPECT_THAT(WriteFileAtomically(dir + "/missing/plan.json", "x"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("plan.json")));
  EXPECT_THAT(WriteFileAtomically(dir + "/", "x"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("names a directory")));
  EXPECT_TRUE(testing::ListDir(dir).empty());
}

TEST(ReplaceFileTest, FailedRenameKeepsTheOldFile) {
  const std::string dir = testing::MakeTempDir("posix_file");
  const std::string target = dir + "/target";
  ASSERT_EQ(mkdir(target.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((target + "/inside").c_str(), 0755), 0);  // a non-empty directory
  EXPECT_THAT(WriteFileAtomically(target, "x"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("rename to " + target)));
  EXPECT_THAT(testing::ListDir(dir), ElementsAre("target"));
}

}  // namespace
}  // namespace splitd
