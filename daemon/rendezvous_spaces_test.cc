#include "daemon/rendezvous_spaces.h"

#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace splitd::daemon {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::IsOkAndHolds;
using ::splitd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using Result = absl::StatusOr<std::vector<std::string>>;

// Collects the one completion of a Get.
struct Completion {
  absl::Notification done;
  Result result = absl::UnknownError("not completed");
  RendezvousSpaces::GetCallback Callback() {
    return [this](Result r) {
      result = std::move(r);
      done.Notify();
    };
  }
};

TEST(RendezvousSpacesTest, GetReturnsAtOnceWhenKeysExist) {
  RendezvousSpaces spaces;
  ASSERT_THAT(spaces.Set("c", 1, "a", "1"), IsOk());
  ASSERT_THAT(spaces.Set("c", 1, "b", "2"), IsOk());
  Completion completion;
  spaces.Get("c", 1, {"b", "a"}, absl::InfiniteFuture(), 1, completion.Callback());
  ASSERT_TRUE(completion.done.HasBeenNotified());
  EXPECT_THAT(completion.result, IsOkAndHolds(ElementsAre("2", "1")));
}

TEST(RendezvousSpacesTest, GetWaitsForTheLastKey) {
  RendezvousSpaces spaces;
  Completion completion;
  spaces.Get("c", 1, {"x", "y"}, absl::InfiniteFuture(), 7, completion.Callback());
  ASSERT_THAT(spaces.Set("c", 1, "x", "first"), IsOk());
  EXPECT_FALSE(completion.done.HasBeenNotified());
  std::thread setter([&] { ASSERT_THAT(spaces.Set("c", 1, "y", "second"), IsOk()); });
  ASSERT_TRUE(completion.done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  setter.join();
  EXPECT_THAT(completion.result, IsOkAndHolds(ElementsAre("first", "second")));
  EXPECT_FALSE(spaces.Cancel(7));
}

TEST(RendezvousSpacesTest, SpacesAreScopedByClusterAndEpoch) {
  RendezvousSpaces spaces;
  ASSERT_THAT(spaces.Set("c", 1, "k", "epoch1"), IsOk());
  ASSERT_THAT(spaces.Set("d", 2, "k", "other"), IsOk());
  Completion completion;
  spaces.Get("c", 2, {"k"}, absl::Now() + absl::Milliseconds(50), 1, completion.Callback());
  ASSERT_TRUE(completion.done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_THAT(completion.result,
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("first missing: \"k\"")));
}

TEST(RendezvousSpacesTest, CancelledWaiterIsNeverCompleted) {
  RendezvousSpaces spaces;
  Completion completion;
  spaces.Get("c", 1, {"k"}, absl::Now() + absl::Milliseconds(100), 3, completion.Callback());
  EXPECT_TRUE(spaces.Cancel(3));
  ASSERT_THAT(spaces.Set("c", 1, "k", "v"), IsOk());
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_FALSE(completion.done.HasBeenNotified());
}

TEST(RendezvousSpacesTest, DroppingAnEpochAbortsItsWaitersAndForgetsItsKeys) {
  RendezvousSpaces spaces;
  ASSERT_THAT(spaces.Set("c", 1, "k", "v"), IsOk());
  Completion completion;
  spaces.Get("c", 1, {"missing"}, absl::InfiniteFuture(), 1, completion.Callback());
  ASSERT_THAT(spaces.Set("c", 2, "k", "new"), IsOk());
  spaces.Drop("c", 2);
  ASSERT_TRUE(completion.done.HasBeenNotified());
  EXPECT_THAT(completion.result, StatusIs(absl::StatusCode::kAborted, HasSubstr("epoch 1")));
  EXPECT_EQ(spaces.KeyCount("c", 1), 0);
  EXPECT_EQ(spaces.KeyCount("c", 2), 1);
}

TEST(RendezvousSpacesTest, TotalKeyCountSumsEverySpace) {
  RendezvousSpaces spaces;
  EXPECT_EQ(spaces.TotalKeyCount(), 0);
  ASSERT_THAT(spaces.Set("c", 1, "a", "v"), IsOk());
  ASSERT_THAT(spaces.Set("c", 1, "b", "v"), IsOk());
  ASSERT_THAT(spaces.Set("c", 1, "a", "replaced"), IsOk());
  ASSERT_THAT(spaces.Set("d", 2, "a", "v"), IsOk());
  EXPECT_EQ(spaces.TotalKeyCount(), 3);
  spaces.Drop("c", std::numeric_limits<int64_t>::max());
  EXPECT_EQ(spaces.TotalKeyCount(), 1);
}

TEST(RendezvousSpacesTest, CountersAddAtomicallyAndReadAsText) {
  RendezvousSpaces spaces;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) ASSERT_THAT(spaces.Add("c", 1, "n", 1), IsOk());
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(spaces.Add("c", 1, "n", 0), IsOkAndHolds(800));
  Completion completion;
  spaces.Get("c", 1, {"n"}, absl::InfiniteFuture(), 1, completion.Callback());
  EXPECT_THAT(completion.result, IsOkAndHolds(ElementsAre("800")));
  ASSERT_THAT(spaces.Set("c", 1, "text", "abc"), IsOk());
  EXPECT_THAT(spaces.Add("c", 1, "text", 1),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a counter")));
}

TEST(RendezvousSpacesTest, LimitsNameTheField) {
  RendezvousLimits limits;
  limits.max_value_bytes = 16;
  limits.max_space_bytes = 40;
  RendezvousSpaces spaces(limits);
  EXPECT_THAT(spaces.Set("c", 1, "", "v"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("key must not be empty")));
  EXPECT_THAT(spaces.Set("c", 1, std::string(600, 'k'), "v"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("key must be at most 512")));
  EXPECT_THAT(spaces.Set("c", 1, "k", std::string(17, 'v')),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("value must be at most 16 bytes, got 17")));
  ASSERT_THAT(spaces.Set("c", 1, "k1", std::string(16, 'v')), IsOk());
  ASSERT_THAT(spaces.Set("c", 1, "k2", std::string(16, 'v')), IsOk());
  EXPECT_THAT(spaces.Set("c", 1, "k3", std::string(16, 'v')),
              StatusIs(absl::StatusCode::kResourceExhausted));
  Completion empty;
  spaces.Get("c", 1, {}, absl::InfiniteFuture(), 1, empty.Callback());
  EXPECT_THAT(empty.result, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("keys")));
}

TEST(RendezvousSpacesTest, DestructionCompletesWaiters) {
  Completion completion;
  {
    RendezvousSpaces spaces;
    spaces.Get("c", 1, {"k"}, absl::InfiniteFuture(), 1, completion.Callback());
  }
  ASSERT_TRUE(completion.done.HasBeenNotified());
  EXPECT_THAT(completion.result, StatusIs(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace splitd::daemon
