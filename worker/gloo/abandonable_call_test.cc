#include "worker/gloo/abandonable_call.h"

#include <atomic>
#include <memory>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/in_memory_rendezvous.h"

namespace splitd::worker {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::HasSubstr;

// The agent's rendezvous, cancelled when the test says so.
class CancellableRendezvous : public testing::InMemoryRendezvous {
 public:
  bool Cancelled() const override { return cancelled.load(); }
  std::atomic<bool> cancelled{false};
};

TEST(RunAbandonableTest, ACallThatEndsGivesItsStatus) {
  CancellableRendezvous rendezvous;
  EXPECT_THAT(RunAbandonable("ok", &rendezvous,
                             [](RendezvousClient* client) { return client->Set("k", "v"); }),
              IsOk());
  EXPECT_EQ(rendezvous.set_calls(), 1);
  EXPECT_THAT(RunAbandonable("failing", &rendezvous,
                             [](RendezvousClient*) { return absl::UnavailableError("down"); }),
              StatusIs(absl::StatusCode::kUnavailable));
}

// A call blocked in something that never looks at the rendezvous (as Gloo's pair connect) is
// left behind once the rendezvous is cancelled; what it does afterwards never reaches the
// agent's client.
TEST(RunAbandonableTest, ACancelledRendezvousLeavesABlockedCallBehind) {
  auto rendezvous = std::make_unique<CancellableRendezvous>();
  auto unblock = std::make_shared<absl::Notification>();
  auto after = std::make_shared<absl::Notification>();
  auto late_status = std::make_shared<absl::Status>();
  CancellableRendezvous* agent_client = rendezvous.get();
  std::thread canceller([agent_client] {
    absl::SleepFor(absl::Milliseconds(100));
    agent_client->cancelled = true;
  });
  const absl::Status status = RunAbandonable(
      "blocked", rendezvous.get(), [unblock, after, late_status](RendezvousClient* client) {
        unblock->WaitForNotification();
        *late_status = client->Set("late", "v");
        after->Notify();
        return absl::OkStatus();
      });
  canceller.join();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kCancelled, HasSubstr("blocked: abandoned")));
  EXPECT_EQ(rendezvous->set_calls(), 0);
  rendezvous.reset();  // the agent's client may go away while the call still runs
  unblock->Notify();
  after->WaitForNotification();
  EXPECT_THAT(*late_status, StatusIs(absl::StatusCode::kCancelled));
}

}  // namespace
}  // namespace splitd::worker
