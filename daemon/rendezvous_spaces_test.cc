#include "daemon/rendezvous_spaces.h"

#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace splitd::daemon {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::IsOkAndHolds;
using ::splitd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::FieldsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

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

// The value of `key` now (Get of a key that exists completes before it returns).
Result ValueNow(RendezvousSpaces& spaces, const std::string& key) {
  Completion completion;
  spaces.Get("c", 1, "", {key}, absl::InfiniteFuture(), 999, completion.Callback());
  if (!completion.done.HasBeenNotified()) {
    spaces.Cancel(999);
    return absl::NotFoundError(absl::StrCat("key \"", key, "\" does not exist"));
  }
  return completion.result;
}

// Persistence hooks that record what they were asked to make durable and fail on request.
struct Recorder {
  std::vector<std::string> writes;
  bool fail = false;
  RendezvousSpaces::PersistFn Put() {
    return [this](const std::string& cluster, int64_t epoch, const std::string& key,
                  const std::string& value) {
      return Queue(absl::StrCat("put ", cluster, "/", epoch, "/", key, "=", value));
    };
  }
  RendezvousSpaces::PersistDeleteFn Delete() {
    return [this](const std::string& cluster, int64_t epoch, const std::string& key) {
      return Queue(absl::StrCat("delete ", cluster, "/", epoch, "/", key));
    };
  }
  RendezvousSpaces::Durable Queue(std::string write) {
    absl::Status status = absl::OkStatus();
    if (fail) {
      status = absl::UnavailableError("disk is full");
    } else {
      writes.push_back(std::move(write));
    }
    return [status](std::function<void(absl::Status)> done) { done(status); };
  }
};

// Deadlines are on the injected clock: a wait ends when that clock passes its deadline, however
// little real time went by.
TEST(RendezvousSpacesTest, DeadlinesFollowTheInjectedClock) {
  FakeClock clock;
  RendezvousSpaces spaces({}, nullptr, nullptr, &clock);
  Completion completion;
  spaces.Get("c", 1, "m-0", {"k"}, clock.Now() + absl::Hours(1), 1, completion.Callback());
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_FALSE(completion.done.HasBeenNotified());
  clock.Advance(absl::Hours(1) + absl::Seconds(1));
  ASSERT_TRUE(completion.done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_THAT(completion.result, StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST(RendezvousSpacesTest, GetReturnsAtOnceWhenKeysExist) {
  RendezvousSpaces spaces;
  ASSERT_THAT(spaces.Set("c", 1, "a", "1"), IsOk());
  ASSERT_THAT(spaces.Set("c", 1, "b", "2"), IsOk());
  Completion completion;
  spaces.Get("c", 1, "m-0", {"b", "a"}, absl::InfiniteFuture(), 1, completion.Callback());
  ASSERT_TRUE(completion.done.HasBeenNotified());
  EXPECT_THAT(completion.result, IsOkAndHolds(ElementsAre("2", "1")));
}

TEST(RendezvousSpacesTest, GetWaitsForTheLastKey) {
  RendezvousSpaces spaces;
  Completion completion;
  spaces.Get("c", 1, "m-0", {"x", "y"}, absl::InfiniteFuture(), 7, completion.Callback());
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
  spaces.Get("c", 2, "m-0", {"k"}, absl::Now() + absl::Milliseconds(50), 1, completion.Callback());
  ASSERT_TRUE(completion.done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_THAT(completion.result,
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("first missing: \"k\"")));
}

TEST(RendezvousSpacesTest, CancelledWaiterIsNeverCompleted) {
  RendezvousSpaces spaces;
  Completion completion;
  spaces.Get("c", 1, "m-0", {"k"}, absl::Now() + absl::Milliseconds(100), 3, completion.Callback());
  EXPECT_TRUE(spaces.Cancel(3));
  ASSERT_THAT(spaces.Set("c", 1, "k", "v"), IsOk());
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_FALSE(completion.done.HasBeenNotified());
}

TEST(RendezvousSpacesTest, DroppingAnEpochAbortsItsWaitersAndForgetsItsKeys) {
  RendezvousSpaces spaces;
  ASSERT_THAT(spaces.Set("c", 1, "k", "v"), IsOk());
  Completion completion;
  spaces.Get("c", 1, "m-0", {"missing"}, absl::InfiniteFuture(), 1, completion.Callback());
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
  spaces.Get("c", 1, "m-0", {"n"}, absl::InfiniteFuture(), 1, completion.Callback());
  EXPECT_THAT(completion.result, IsOkAndHolds(ElementsAre("800")));
  ASSERT_THAT(spaces.Set("c", 1, "text", "abc"), IsOk());
  EXPECT_THAT(spaces.Add("c", 1, "text", 1),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a counter")));
}

TEST(RendezvousSpacesTest, CompareSetOnAMissingKeyWithEmptyExpectedSetsDesired) {
  RendezvousSpaces spaces;
  EXPECT_THAT(spaces.CompareSet("c", 1, "k", "", "new"), IsOkAndHolds("new"));
  EXPECT_THAT(ValueNow(spaces, "k"), IsOkAndHolds(ElementsAre("new")));
}

TEST(RendezvousSpacesTest, CompareSetOnAMissingKeyWithExpectedAnswersExpectedAndSetsNothing) {
  RendezvousSpaces spaces;
  EXPECT_THAT(spaces.CompareSet("c", 1, "k", "old", "new"), IsOkAndHolds("old"));
  EXPECT_EQ(spaces.KeyCount("c", 1), 0);
}

TEST(RendezvousSpacesTest, CompareSetReplacesAMatchingValue) {
  RendezvousSpaces spaces;
  ASSERT_THAT(spaces.Set("c", 1, "k", "old"), IsOk());
  EXPECT_THAT(spaces.CompareSet("c", 1, "k", "old", "new"), IsOkAndHolds("new"));
  EXPECT_THAT(ValueNow(spaces, "k"), IsOkAndHolds(ElementsAre("new")));
}

TEST(RendezvousSpacesTest, CompareSetKeepsAValueThatDoesNotMatchAndAnswersIt) {
  RendezvousSpaces spaces;
  ASSERT_THAT(spaces.Set("c", 1, "k", "current"), IsOk());
  EXPECT_THAT(spaces.CompareSet("c", 1, "k", "other", "new"), IsOkAndHolds("current"));
  // An empty `expected` matches only a missing key (or an empty value), not any value.
  EXPECT_THAT(spaces.CompareSet("c", 1, "k", "", "new"), IsOkAndHolds("current"));
  EXPECT_THAT(ValueNow(spaces, "k"), IsOkAndHolds(ElementsAre("current")));
}

TEST(RendezvousSpacesTest, CompareSetOnACounterComparesItsText) {
  RendezvousSpaces spaces;
  ASSERT_THAT(spaces.Add("c", 1, "n", 5), IsOkAndHolds(5));
  EXPECT_THAT(spaces.CompareSet("c", 1, "n", "4", "40"), IsOkAndHolds("5"));
  EXPECT_THAT(spaces.CompareSet("c", 1, "n", "5", "7"), IsOkAndHolds("7"));
  EXPECT_THAT(spaces.Add("c", 1, "n", 1), IsOkAndHolds(8));
}

TEST(RendezvousSpacesTest, CompareSetThatCreatesTheKeyWakesItsWaiter) {
  RendezvousSpaces spaces;
  Completion completion;
  spaces.Get("c", 1, "m-0", {"k"}, absl::InfiniteFuture(), 1, completion.Callback());
  ASSERT_THAT(spaces.CompareSet("c", 1, "k", "not-there", "v"), IsOkAndHolds("not-there"));
  EXPECT_FALSE(completion.done.HasBeenNotified());
  ASSERT_THAT(spaces.CompareSet("c", 1, "k", "", "v"), IsOkAndHolds("v"));
  ASSERT_TRUE(completion.done.HasBeenNotified());
  EXPECT_THAT(completion.result, IsOkAndHolds(ElementsAre("v")));
}

TEST(RendezvousSpacesTest, DeletedKeyIsWaitedForAgainUntilItIsSetAgain) {
  RendezvousSpaces spaces;
  ASSERT_THAT(spaces.Set("c", 1, "k", "first"), IsOk());
  EXPECT_THAT(spaces.Delete("c", 1, "k"), IsOkAndHolds(true));
  EXPECT_THAT(spaces.Delete("c", 1, "k"), IsOkAndHolds(false));
  EXPECT_THAT(spaces.Delete("other", 9, "k"), IsOkAndHolds(false));
  EXPECT_EQ(spaces.KeyCount("c", 1), 0);
  Completion completion;
  spaces.Get("c", 1, "m-0", {"k"}, absl::InfiniteFuture(), 1, completion.Callback());
  EXPECT_FALSE(completion.done.HasBeenNotified());
  ASSERT_THAT(spaces.Set("c", 1, "k", "second"), IsOk());
  ASSERT_TRUE(completion.done.HasBeenNotified());
  EXPECT_THAT(completion.result, IsOkAndHolds(ElementsAre("second")));
}

TEST(RendezvousSpacesTest, AWaiterCompletesOnlyWhenEveryKeyExistsAtOnce) {
  RendezvousSpaces spaces;
  Completion completion;
  spaces.Get("c", 1, "m-0", {"a", "b", "c"}, absl::InfiniteFuture(), 1, completion.Callback());
  ASSERT_THAT(spaces.Set("c", 1, "c", "3"), IsOk());
  ASSERT_THAT(spaces.Set("c", 1, "a", "1"), IsOk());
  EXPECT_FALSE(completion.done.HasBeenNotified());
  ASSERT_THAT(spaces.Delete("c", 1, "a"), IsOkAndHolds(true));
  ASSERT_THAT(spaces.Set("c", 1, "b", "2"), IsOk());  // "a" is gone again
  EXPECT_FALSE(completion.done.HasBeenNotified());
  EXPECT_THAT(spaces.WaitingKeys("c", 1), ElementsAre(Pair("m-0", ElementsAre("a"))));
  ASSERT_THAT(spaces.Set("c", 1, "a", "one"), IsOk());
  ASSERT_TRUE(completion.done.HasBeenNotified());
  EXPECT_THAT(completion.result, IsOkAndHolds(ElementsAre("one", "2", "3")));
}

TEST(RendezvousSpacesTest, ManyWaitersOnOneKeyAndOneWaiterPerKeyAllComplete) {
  RendezvousSpaces spaces;
  constexpr int kWaiters = 2000;
  std::vector<Completion> on_one(kWaiters);
  std::vector<Completion> on_own(kWaiters);
  for (int i = 0; i < kWaiters; ++i) {
    spaces.Get("c", 1, absl::StrCat("m-", i), {"go"}, absl::InfiniteFuture(), i,
               on_one[i].Callback());
    spaces.Get("c", 1, absl::StrCat("m-", i), {absl::StrCat("own/", i)}, absl::InfiniteFuture(),
               kWaiters + i, on_own[i].Callback());
  }
  for (int i = 0; i < kWaiters; ++i) {
    ASSERT_THAT(spaces.Set("c", 1, absl::StrCat("own/", i), absl::StrCat(i)), IsOk());
    ASSERT_TRUE(on_own[i].done.HasBeenNotified()) << i;
    EXPECT_THAT(on_own[i].result, IsOkAndHolds(ElementsAre(absl::StrCat(i))));
  }
  EXPECT_FALSE(on_one[0].done.HasBeenNotified());
  ASSERT_THAT(spaces.Set("c", 1, "go", "now"), IsOk());
  for (int i = 0; i < kWaiters; ++i) ASSERT_TRUE(on_one[i].done.HasBeenNotified()) << i;
  EXPECT_THAT(spaces.WaitingKeys("c", 1), IsEmpty());
}

TEST(RendezvousSpacesTest, DeleteGivesItsBytesBackToTheSpace) {
  RendezvousLimits limits;
  limits.max_space_bytes = 40;
  RendezvousSpaces spaces(limits);
  ASSERT_THAT(spaces.Set("c", 1, "k1", std::string(16, 'v')), IsOk());
  ASSERT_THAT(spaces.Set("c", 1, "k2", std::string(16, 'v')), IsOk());
  ASSERT_THAT(spaces.Set("c", 1, "k3", std::string(16, 'v')),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("limit is 40")));
  ASSERT_THAT(spaces.Delete("c", 1, "k1"), IsOkAndHolds(true));
  EXPECT_THAT(spaces.Set("c", 1, "k3", std::string(16, 'v')), IsOk());
  EXPECT_THAT(spaces.CompareSet("c", 1, "k4", "", std::string(16, 'v')),
              StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST(RendezvousSpacesTest, CheckSaysWhetherKeysExistAndCountsUnderAPrefix) {
  RendezvousSpaces spaces;
  for (const char* key : {"rank/0", "rank/1", "rankings", "other"}) {
    ASSERT_THAT(spaces.Set("c", 1, key, "v"), IsOk());
  }
  EXPECT_THAT(spaces.Check("c", 1, {}, "rank/"), IsOkAndHolds(FieldsAre(true, 2)));
  EXPECT_THAT(spaces.Check("c", 1, {"rank/0", "other"}, ""), IsOkAndHolds(FieldsAre(true, 4)));
  EXPECT_THAT(spaces.Check("c", 1, {"rank/0", "missing"}, "rank"),
              IsOkAndHolds(FieldsAre(false, 3)));
  EXPECT_THAT(spaces.Check("c", 1, {}, "zzz"), IsOkAndHolds(FieldsAre(true, 0)));
  EXPECT_THAT(spaces.Check("c", 2, {}, ""), IsOkAndHolds(FieldsAre(true, 0)));
  EXPECT_THAT(spaces.Check("c", 2, {"rank/0"}, ""), IsOkAndHolds(FieldsAre(false, 0)));
  EXPECT_THAT(
      spaces.Check("c", 1, {"rank/0", ""}, ""),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("keys[1]: key must not be empty")));
  EXPECT_THAT(spaces.Check("c", 1, {}, std::string(513, 'p')),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("prefix must be at most 512 bytes, got 513")));
  // Check never creates a space or waits.
  EXPECT_EQ(spaces.KeyCount("c", 2), 0);
}

TEST(RendezvousSpacesTest, WaitingKeysNamesEachMemberAndTheKeysItStillLacks) {
  RendezvousSpaces spaces;
  ASSERT_THAT(spaces.Set("c", 1, "a", "v"), IsOk());
  Completion first, second, anonymous;
  spaces.Get("c", 1, "m-1", {"a", "b", "c"}, absl::InfiniteFuture(), 1, first.Callback());
  spaces.Get("c", 1, "m-2", {"c"}, absl::InfiniteFuture(), 2, second.Callback());
  spaces.Get("c", 1, "", {"d"}, absl::InfiniteFuture(), 3, anonymous.Callback());
  EXPECT_THAT(spaces.WaitingKeys("c", 1), UnorderedElementsAre(Pair("m-1", ElementsAre("b", "c")),
                                                               Pair("m-2", ElementsAre("c"))));
  EXPECT_THAT(spaces.WaitingKeys("c", 2), IsEmpty());

  ASSERT_THAT(spaces.Set("c", 1, "b", "v"), IsOk());
  EXPECT_THAT(spaces.WaitingKeys("c", 1),
              UnorderedElementsAre(Pair("m-1", ElementsAre("c")), Pair("m-2", ElementsAre("c"))));
  ASSERT_TRUE(spaces.Cancel(2));
  EXPECT_THAT(spaces.WaitingKeys("c", 1), ElementsAre(Pair("m-1", ElementsAre("c"))));
  ASSERT_THAT(spaces.Set("c", 1, "c", "v"), IsOk());
  ASSERT_TRUE(first.done.HasBeenNotified());
  EXPECT_THAT(spaces.WaitingKeys("c", 1), IsEmpty());
  EXPECT_TRUE(spaces.Cancel(3));
}

TEST(RendezvousSpacesTest, WaitingKeysListsAtMostEightKeysPerMember) {
  RendezvousSpaces spaces;
  std::vector<std::string> keys;
  for (int i = 0; i < 20; ++i) keys.push_back(absl::StrCat("k", i));
  Completion one, two;
  spaces.Get("c", 1, "m-1", keys, absl::InfiniteFuture(), 1, one.Callback());
  spaces.Get("c", 1, "m-1", {"k0", "other"}, absl::InfiniteFuture(), 2, two.Callback());
  const auto waiting = spaces.WaitingKeys("c", 1);
  ASSERT_EQ(waiting.size(), 1u);
  EXPECT_THAT(waiting.at("m-1"), ElementsAre("k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"));
  EXPECT_TRUE(spaces.Cancel(1));
  EXPECT_TRUE(spaces.Cancel(2));
}

TEST(RendezvousSpacesTest, EveryChangeIsPersistedBeforeItIsApplied) {
  Recorder recorder;
  RendezvousSpaces spaces({}, recorder.Put(), recorder.Delete());
  ASSERT_THAT(spaces.Set("c", 1, "k", "v"), IsOk());
  ASSERT_THAT(spaces.CompareSet("c", 1, "k", "v", "w"), IsOkAndHolds("w"));
  ASSERT_THAT(spaces.CompareSet("c", 1, "k", "no", "x"), IsOkAndHolds("w"));  // no change
  ASSERT_THAT(spaces.Add("c", 1, "n", 2), IsOkAndHolds(2));
  ASSERT_THAT(spaces.Delete("c", 1, "k"), IsOkAndHolds(true));
  ASSERT_THAT(spaces.Delete("c", 1, "k"), IsOkAndHolds(false));  // no change
  EXPECT_THAT(recorder.writes,
              ElementsAre("put c/1/k=v", "put c/1/k=w", "put c/1/n=2", "delete c/1/k"));
}

// Writes queue for the store while an earlier one waits for its sync (they share the next one);
// read-modify-writes build on the queued values; nothing is stored or seen before it is durable.
TEST(RendezvousSpacesTest, WritesQueueWhileEarlierOnesWaitAndApplyOnlyOnceDurable) {
  std::vector<std::string> queued;
  std::vector<std::function<void(absl::Status)>> syncs;  // what the store calls back
  RendezvousSpaces spaces(
      {},
      [&](const std::string&, int64_t, const std::string& key, const std::string& value) {
        queued.push_back(absl::StrCat(key, "=", value));
        return RendezvousSpaces::Durable(
            [&](std::function<void(absl::Status)> done) { syncs.push_back(std::move(done)); });
      },
      nullptr);
  Completion waiter;
  spaces.Get("c", 1, "m-0", {"k"}, absl::InfiniteFuture(), 1, waiter.Callback());
  absl::Status set = absl::UnknownError("not answered");
  std::vector<absl::StatusOr<int64_t>> added;
  // Each call returns at once: none waits for the store.
  spaces.Set("c", 1, "k", "v", [&](absl::Status status) { set = status; });
  for (int64_t delta : {1, 2}) {
    spaces.Add("c", 1, "n", delta, [&](absl::StatusOr<int64_t> value) { added.push_back(value); });
  }
  EXPECT_THAT(queued, ElementsAre("k=v", "n=1", "n=3"));  // the second add built on the first
  EXPECT_THAT(set, StatusIs(absl::StatusCode::kUnknown));
  EXPECT_TRUE(added.empty());
  EXPECT_FALSE(waiter.done.HasBeenNotified());
  EXPECT_EQ(spaces.KeyCount("c", 1), 0);
  // Durable out of order: the newest write of a key wins.
  ASSERT_EQ(syncs.size(), 3u);
  syncs[2](absl::OkStatus());
  syncs[1](absl::OkStatus());
  EXPECT_THAT(ValueNow(spaces, "n"), IsOkAndHolds(ElementsAre("3")));
  syncs[0](absl::OkStatus());
  EXPECT_THAT(set, IsOk());
  EXPECT_THAT(added, ElementsAre(IsOkAndHolds(3), IsOkAndHolds(1)));
  ASSERT_TRUE(waiter.done.HasBeenNotified());
  EXPECT_THAT(waiter.result, IsOkAndHolds(ElementsAre("v")));
  EXPECT_EQ(spaces.KeyCount("c", 1), 2);
}

TEST(RendezvousSpacesTest, AnAnswerReadFromAQueuedWriteWaitsUntilItIsDurable) {
  std::vector<std::string> queued;
  std::vector<std::function<void(absl::Status)>> syncs;  // what the store calls back
  auto durable = [&](std::string write) {
    queued.push_back(std::move(write));
    return RendezvousSpaces::Durable(
        [&](std::function<void(absl::Status)> done) { syncs.push_back(std::move(done)); });
  };
  RendezvousSpaces spaces(
      {},
      [&](const std::string&, int64_t, const std::string& key, const std::string& value) {
        return durable(absl::StrCat(key, "=", value));
      },
      [&](const std::string&, int64_t, const std::string& key) {
        return durable(absl::StrCat("delete ", key));
      });
  spaces.Set("c", 1, "k", "v", [](absl::Status) {});
  // No swap: "v" is queued, not durable, so the answer waits for it (queued again).
  absl::StatusOr<std::string> compared = absl::UnknownError("not answered");
  spaces.CompareSet("c", 1, "k", "other", "w",
                    [&](absl::StatusOr<std::string> value) { compared = std::move(value); });
  // A removal queued, then a Delete that finds the key missing through it.
  spaces.Set("c", 1, "gone", "x", [](absl::Status) {});
  spaces.Delete("c", 1, "gone", [](absl::StatusOr<bool>) {});
  absl::StatusOr<bool> deleted = absl::UnknownError("not answered");
  spaces.Delete("c", 1, "gone", [&](absl::StatusOr<bool> existed) { deleted = existed; });
  EXPECT_THAT(queued, ElementsAre("k=v", "k=v", "gone=x", "delete gone", "delete gone"));
  EXPECT_THAT(compared, StatusIs(absl::StatusCode::kUnknown));
  EXPECT_THAT(deleted, StatusIs(absl::StatusCode::kUnknown));
  for (auto& sync : syncs) sync(absl::OkStatus());
  EXPECT_THAT(compared, IsOkAndHolds("v"));
  EXPECT_THAT(deleted, IsOkAndHolds(false));

  // A failed write fails the answer read from it.
  syncs.clear();
  spaces.Set("c", 1, "k", "z", [](absl::Status) {});
  spaces.CompareSet("c", 1, "k", "other", "w",
                    [&](absl::StatusOr<std::string> value) { compared = std::move(value); });
  ASSERT_EQ(syncs.size(), 2u);
  syncs[0](absl::UnavailableError("disk is full"));
  syncs[1](absl::UnavailableError("an earlier state change failed"));
  EXPECT_THAT(compared, StatusIs(absl::StatusCode::kUnavailable));
  // With nothing queued, the answer comes at once, from the durable value.
  spaces.CompareSet("c", 1, "k", "other", "w",
                    [&](absl::StatusOr<std::string> value) { compared = std::move(value); });
  EXPECT_THAT(compared, IsOkAndHolds("v"));
}

TEST(RendezvousSpacesTest, PersistFailureRefusesTheChange) {
  Recorder recorder;
  RendezvousSpaces spaces({}, recorder.Put(), recorder.Delete());
  ASSERT_THAT(spaces.Set("c", 1, "k", "v"), IsOk());
  Completion waiter;
  spaces.Get("c", 1, "m-0", {"fresh"}, absl::InfiniteFuture(), 1, waiter.Callback());
  recorder.fail = true;
  EXPECT_THAT(spaces.CompareSet("c", 1, "k", "v", "w"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("disk is full")));
  EXPECT_THAT(spaces.CompareSet("c", 1, "fresh", "", "w"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(spaces.Delete("c", 1, "k"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(spaces.Set("c", 1, "fresh", "w"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_FALSE(waiter.done.HasBeenNotified());
  EXPECT_THAT(ValueNow(spaces, "k"), IsOkAndHolds(ElementsAre("v")));
  EXPECT_EQ(spaces.KeyCount("c", 1), 1);
  EXPECT_THAT(spaces.WaitingKeys("c", 1), ElementsAre(Pair("m-0", ElementsAre("fresh"))));
  EXPECT_TRUE(spaces.Cancel(1));
}

TEST(RendezvousSpacesTest, AFullSpaceRefusesAWriteBeforePersistingIt) {
  RendezvousLimits limits;
  limits.max_space_bytes = 20;
  Recorder recorder;
  RendezvousSpaces spaces(limits, recorder.Put(), recorder.Delete());
  ASSERT_THAT(spaces.Set("c", 1, "k1", std::string(16, 'v')), IsOk());
  EXPECT_THAT(spaces.Set("c", 1, "k2", std::string(16, 'v')),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(recorder.writes.size(), 1u);
}

TEST(RendezvousSpacesTest, DeleteIsRefusedWhenWritesArePersistedButDeletionsCannotBe) {
  Recorder recorder;
  RendezvousSpaces spaces({}, recorder.Put());
  ASSERT_THAT(spaces.Set("c", 1, "k", "v"), IsOk());
  EXPECT_THAT(spaces.Delete("c", 1, "k"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("durable")));
  EXPECT_EQ(spaces.KeyCount("c", 1), 1);
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
  EXPECT_THAT(spaces.CompareSet("c", 1, "k", "", std::string(17, 'v')),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("desired must be at most 16 bytes, got 17")));
  EXPECT_THAT(spaces.CompareSet("c", 1, "k", std::string(17, 'v'), "v"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("expected must be at most 16 bytes, got 17")));
  EXPECT_THAT(spaces.CompareSet("c", 1, "", "", "v"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("key must not be empty")));
  EXPECT_THAT(spaces.Delete("c", 1, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("key must not be empty")));
  ASSERT_THAT(spaces.Set("c", 1, "k1", std::string(16, 'v')), IsOk());
  ASSERT_THAT(spaces.Set("c", 1, "k2", std::string(16, 'v')), IsOk());
  EXPECT_THAT(spaces.Set("c", 1, "k3", std::string(16, 'v')),
              StatusIs(absl::StatusCode::kResourceExhausted));
  Completion empty;
  spaces.Get("c", 1, "m-0", {}, absl::InfiniteFuture(), 1, empty.Callback());
  EXPECT_THAT(empty.result, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("keys")));
}

TEST(RendezvousSpacesTest, DestructionCompletesWaiters) {
  Completion completion;
  {
    RendezvousSpaces spaces;
    spaces.Get("c", 1, "m-0", {"k"}, absl::InfiniteFuture(), 1, completion.Callback());
  }
  ASSERT_TRUE(completion.done.HasBeenNotified());
  EXPECT_THAT(completion.result, StatusIs(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace splitd::daemon
