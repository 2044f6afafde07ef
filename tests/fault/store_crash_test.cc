#include <signal.h>
#include <sys/wait.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "daemon/store/log_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_files.h"

namespace splitd::store {
namespace {

using ::splitd::testing::IsOk;

constexpr int kRounds = 5;
constexpr int kMaxGroup = 16;

// The last index the writer printed on a whole line; -1 when none.
int64_t LastAcknowledged(const std::string& out) {
  int64_t last = -1;
  for (absl::string_view line : absl::StrSplit(out.substr(0, out.rfind('\n') + 1), '\n')) {
    int64_t index = 0;
    if (!line.empty() && absl::SimpleAtoi(line, &index)) last = index;
  }
  return last;
}

// Starts the writer on `dir` and kills it with SIGKILL a random moment after it acknowledged
// `target`; returns the last index it acknowledged (-1 for none).
int64_t RunWriterUntilKilled(const std::string& dir, uint32_t seed, int64_t target,
                             std::mt19937& random) {
  auto writer = testing::Subprocess::Start({testing::RunfilePath("tests/fault/store_crash_writer"),
                                            dir, absl::StrCat(seed), absl::StrCat(kMaxGroup)});
  EXPECT_THAT(writer, IsOk());
  if (!writer.ok()) return -1;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (LastAcknowledged(writer->Stdout()) < target && absl::Now() < deadline) {
    if (writer->Wait(absl::ZeroDuration()).ok()) break;  // exited: reported below
    absl::SleepFor(absl::Milliseconds(1));
  }
  absl::SleepFor(absl::Microseconds(std::uniform_int_distribution<int>(0, 20000)(random)));
  writer->Signal(SIGKILL);
  absl::StatusOr<int> status = writer->Wait(absl::Seconds(10));
  EXPECT_THAT(status, IsOk());
  EXPECT_TRUE(status.ok() && WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL)
      << "the writer ended on its own: " << writer->Stderr();
  const int64_t acknowledged = LastAcknowledged(writer->Stdout());
  EXPECT_GE(acknowledged, target) << "the writer acknowledged too little in 10 s";
  return acknowledged;
}

TEST(StoreCrashTest, KilledWriterKeepsEveryAcknowledgedChangeAsAPrefix) {
  const std::string dir = testing::MakeTempDir("store_crash");
  const uint32_t seed = static_cast<uint32_t>(absl::ToUnixNanos(absl::Now()));
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937 random(seed);
  int64_t acknowledged = -1;  // the highest index any writer acknowledged
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    const int64_t target = acknowledged + 200 + std::uniform_int_distribution<int>(0, 300)(random);
    acknowledged = std::max(acknowledged, RunWriterUntilKilled(dir, seed + round, target, random));

    auto store = LogStateStore::Open(dir);
    ASSERT_THAT(store, IsOk());
    auto clusters = (*store)->LoadClusters();
    ASSERT_THAT(clusters, IsOk());
    ASSERT_EQ(clusters->size(), 1u);
    const std::vector<StoredMember>& members = clusters->front().members;
    // Members 0 to k-1, each once, and none of a refused change: no gap, no duplicate.
    for (size_t i = 0; i < members.size(); ++i) {
      ASSERT_EQ(members[i].identity.pod(), absl::StrCat("pod-", i)) << "member " << i;
    }
    EXPECT_GT(static_cast<int64_t>(members.size()), acknowledged);
  }
}

}  // namespace
}  // namespace splitd::store
