#include "worker/gloo/rendezvous_store.h"

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "gloo/rendezvous/prefix_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/in_memory_rendezvous.h"
#include "worker/gloo/gloo_errors.h"

namespace splitd::worker {
namespace {

using ::splitd::testing::InMemoryRendezvous;
using ::splitd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<char> Bytes(const std::string& text) {
  return std::vector<char>(text.begin(), text.end());
}

TEST(RendezvousStoreTest, SetThenGetRoundTripsBytes) {
  InMemoryRendezvous rendezvous;
  RendezvousStore store(&rendezvous, absl::Seconds(5));
  const std::vector<char> value = {'a', '\0', 'b'};
  store.set("k", value);
  EXPECT_EQ(store.get("k"), value);
  EXPECT_EQ(rendezvous.set_calls(), 1);
  EXPECT_EQ(rendezvous.get_calls(), 1);
}

TEST(RendezvousStoreTest, GetBlocksUntilTheKeyIsSet) {
  InMemoryRendezvous rendezvous;
  RendezvousStore store(&rendezvous, absl::Seconds(30));
  std::thread setter([&rendezvous]() {
    absl::SleepFor(absl::Milliseconds(50));
    ASSERT_TRUE(rendezvous.Set("late", "value").ok());
  });
  EXPECT_EQ(store.get("late"), Bytes("value"));
  setter.join();
}

TEST(RendezvousStoreTest, WaitCachesValuesForTheFollowingGets) {
  InMemoryRendezvous rendezvous;
  ASSERT_TRUE(rendezvous.Set("a", "1").ok());
  ASSERT_TRUE(rendezvous.Set("b", "2").ok());
  RendezvousStore store(&rendezvous, absl::Seconds(5));
  store.wait({"a", "b"}, std::chrono::milliseconds(1000));
  EXPECT_EQ(rendezvous.get_calls(), 1);
  EXPECT_EQ(store.get("a"), Bytes("1"));
  EXPECT_EQ(store.get("b"), Bytes("2"));
  EXPECT_EQ(rendezvous.get_calls(), 1);
}

TEST(RendezvousStoreTest, WaitTimeoutThrowsDeadlineExceeded) {
  InMemoryRendezvous rendezvous;
  RendezvousStore store(&rendezvous, absl::Seconds(30));
  try {
    store.wait({"never"}, std::chrono::milliseconds(50));
    FAIL() << "wait returned without the key";
  } catch (const GlooStatusError& e) {
    EXPECT_THAT(e.status(), StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("never")));
  }
}

TEST(RendezvousStoreTest, AWaitLastsAtLeastTheMinimum) {
  // A context whose timeout is a fifth of the bound (PairTimeout) asks for short waits: the
  // store still waits the whole bound for a key that comes later.
  InMemoryRendezvous rendezvous;
  RendezvousStore store(&rendezvous, absl::Seconds(30), /*min_wait=*/absl::Seconds(30));
  std::thread later([&rendezvous] {
    absl::SleepFor(absl::Milliseconds(200));
    ASSERT_TRUE(rendezvous.Set("late", "1").ok());
  });
  EXPECT_NO_THROW(store.wait({"late"}, std::chrono::milliseconds(10)));
  later.join();
  EXPECT_EQ(store.get("late"), Bytes("1"));
}

TEST(RendezvousStoreTest, ZeroTimeoutUsesTheDefaultBound) {
  InMemoryRendezvous rendezvous;
  RendezvousStore store(&rendezvous, absl::Milliseconds(50));
  EXPECT_THROW(store.wait({"never"}, std::chrono::milliseconds(0)), GlooStatusError);
  EXPECT_THROW(store.get("never"), GlooStatusError);
}

TEST(RendezvousStoreTest, PrefixStoreKeysReachTheRendezvousSpace) {
  InMemoryRendezvous rendezvous;
  RendezvousStore store(&rendezvous, absl::Seconds(5));
  ::gloo::rendezvous::PrefixStore prefixed("world", store);
  prefixed.set("0", Bytes("x"));
  EXPECT_THAT(rendezvous.Keys(), ElementsAre("world/0"));
  EXPECT_EQ(prefixed.get("0"), Bytes("x"));
}

TEST(RendezvousStoreTest, ExceptionBecomesItsStatus) {
  absl::Status status =
      CallGloo("step", []() { throw GlooStatusError(absl::DeadlineExceededError("too slow")); });
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("step: too slow")));
}

}  // namespace
}  // namespace splitd::worker
