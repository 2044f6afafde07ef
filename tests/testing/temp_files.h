#ifndef SPLITD_TESTS_TESTING_TEMP_FILES_H_
#define SPLITD_TESTS_TESTING_TEMP_FILES_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace splitd::testing {

// A new empty directory under the test's temporary directory ($TEST_TMPDIR, else /tmp), its
// name starting with `prefix`. Fails the test when it cannot be made.
std::string MakeTempDir(absl::string_view prefix);

// The names in `dir` (without "." and ".."), sorted; empty when it cannot be read.
std::vector<std::string> ListDir(const std::string& dir);

// The bytes of `path`; empty when it cannot be read.
std::string ReadFileBytes(const std::string& path);

// Replaces `path` with `data` (not atomically; for setting up test files).
void WriteFileBytes(const std::string& path, absl::string_view data);

}  // namespace splitd::testing

#endif  // SPLITD_TESTS_TESTING_TEMP_FILES_H_
