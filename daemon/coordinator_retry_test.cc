// The Coordinator's retries of a FAILED epoch (elastic.retries), on a fake clock.

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "daemon/coordinator.h"
#include "daemon/store/memory_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/coordinator_calls.h"
#include "tests/testing/fake_clock.h"

namespace splitd::daemon {
namespace {

using ::splitd::testing::AgentRegistration;
using ::splitd::testing::IsOk;
using ::splitd::testing::MeshTopology;
using ::splitd::testing::RegisterMember;
using ::testing::HasSubstr;

class CoordinatorRetryTest : public ::testing::Test {
 protected:
  // TP2 DP2 whose agents never report: the 1 s bootstrap deadline fails every epoch.
  void Start(int64_t retries) {
    ASSERT_THAT(coordinator_.Recover(), IsOk());
    v1::Topology topology = MeshTopology("llama", {{"tp", 2}, {"dp", 2}});
    topology.mutable_elastic()->set_retries(retries);
    topology.mutable_elastic()->set_retry_delay_ms(500);
    topology.mutable_deadlines()->set_bootstrap_ms(1000);
    ASSERT_THAT(coordinator_.ApplyTopology(topology), IsOk());
    for (int i = 0; i < 4; ++i) {
      ASSERT_THAT(RegisterMember(coordinator_, AgentRegistration("llama", i)), IsOk());
    }
  }

  // Past the bootstrap deadline, then past the retry delay; returns the status after each.
  std::vector<v1::ClusterStatus> FailThenWait() {
    std::vector<v1::ClusterStatus> seen;
    for (absl::Duration step : {absl::Milliseconds(1100), absl::Milliseconds(600)}) {
      clock_.Advance(step);
      coordinator_.Tick();
      absl::StatusOr<v1::ClusterStatus> status = coordinator_.GetStatus("llama");
      EXPECT_THAT(status, IsOk());
      seen.push_back(status.ok() ? *status : v1::ClusterStatus());
    }
    return seen;
  }

  store::MemoryStateStore store_;
  FakeClock clock_;
  Coordinator coordinator_{&store_, &clock_};
};

TEST_F(CoordinatorRetryTest, AFailedEpochStartsAgainUntilTheRetriesAreUsedUp) {
  Start(/*retries=*/2);
  for (int retry = 1; retry <= 2; ++retry) {
    const std::vector<v1::ClusterStatus> seen = FailThenWait();
    EXPECT_EQ(seen[0].state(), v1::PHASE_FAILED);
    EXPECT_EQ(seen[0].epoch(), retry);
    EXPECT_EQ(seen[1].epoch(), retry + 1);
    EXPECT_EQ(seen[1].world_size(), 4);
    EXPECT_THAT(seen[1].epoch_reason(),
                HasSubstr(absl::StrCat("epoch ", retry, " FAILED (rank 0")));
    EXPECT_THAT(seen[1].epoch_reason(), HasSubstr(absl::StrCat("retry ", retry, " of 2")));
  }
  // Both used: epoch 3 stays FAILED.
  const std::vector<v1::ClusterStatus> seen = FailThenWait();
  EXPECT_EQ(seen[1].state(), v1::PHASE_FAILED);
  EXPECT_EQ(seen[1].epoch(), 3);
}

TEST_F(CoordinatorRetryTest, WithoutRetriesAFailedEpochWaitsForAnOperator) {
  Start(/*retries=*/0);
  const std::vector<v1::ClusterStatus> seen = FailThenWait();
  EXPECT_EQ(seen[1].state(), v1::PHASE_FAILED);
  EXPECT_EQ(seen[1].epoch(), 1);
}

}  // namespace
}  // namespace splitd::daemon
