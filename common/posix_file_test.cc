#include "common/posix_file.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace splitd {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string MakeTempDir() {
  std::string pattern = ::testing::TempDir() + "/posix_file_XXXXXX";
  char* made = mkdtemp(pattern.data());
  EXPECT_NE(made, nullptr);
  return pattern;
}

std::set<std::string> ListDir(const std::string& dir) {
  std::set<std::string> names;
  DIR* d = opendir(dir.c_str());
  while (dirent* entry = readdir(d)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.insert(name);
  }
  closedir(d);
  return names;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

TEST(PosixErrorTest, CodeFollowsErrnoAndMessageNamesThePath) {
  EXPECT_THAT(PosixError(ENOENT, "open", "/x/y"),
              StatusIs(absl::StatusCode::kNotFound, "open /x/y: No such file or directory"));
  EXPECT_THAT(PosixError(ENOSPC, "write", "/d/log"),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("write /d/log: ")));
  EXPECT_THAT(PosixError(EACCES, "create", "/d"), StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST(ReplaceFileTest, ReplacesAndLeavesNoTemporaryFile) {
  const std::string dir = MakeTempDir();
  const std::string path = dir + "/port";
  ASSERT_THAT(WriteFileAtomically(path, "one\n"), IsOk());
  ASSERT_THAT(WriteFileAtomically(path, "two\n"), IsOk());
  EXPECT_EQ(ReadAll(path), "two\n");
  EXPECT_THAT(ListDir(dir), ElementsAre("port"));
  struct stat info;
  ASSERT_EQ(stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0644u);
}

TEST(ReplaceFileTest, ModeAndFixedTemporaryName) {
  const std::string dir = MakeTempDir();
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
  EXPECT_EQ(ReadAll(path), "header+more");
  struct stat info;
  ASSERT_EQ(stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_THAT(ListDir(dir), ElementsAre("log"));
}

TEST(ReplaceFileTest, MissingDirectoryNamesThePathAndChangesNothing) {
  const std::string dir = MakeTempDir();
  EXPECT_THAT(WriteFileAtomically(dir + "/missing/plan.json", "x"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("plan.json")));
  EXPECT_THAT(WriteFileAtomically(dir + "/", "x"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("names a directory")));
  EXPECT_TRUE(ListDir(dir).empty());
}

TEST(ReplaceFileTest, FailedRenameKeepsTheOldFile) {
  const std::string dir = MakeTempDir();
  const std::string target = dir + "/target";
  ASSERT_EQ(mkdir(target.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((target + "/inside").c_str(), 0755), 0);  // a non-empty directory
  EXPECT_THAT(WriteFileAtomically(target, "x"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("rename to " + target)));
  EXPECT_THAT(ListDir(dir), ElementsAre("target"));
}

}  // namespace
}  // namespace splitd
