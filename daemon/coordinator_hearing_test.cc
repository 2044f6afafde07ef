// The Coordinator's leases when the daemon hears no member at all, as when it is cut off itself.

#include <cstddef>
#include <vector>

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
using ::splitd::testing::Heartbeat;
using ::splitd::testing::IsOk;
using ::splitd::testing::MeshTopology;
using ::splitd::testing::RegisterMember;

class CoordinatorHearingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(coordinator_.Recover(), IsOk());
    v1::Topology topology = MeshTopology("llama", {{"tp", 2}, {"pp", 2}, {"dp", 2}});
    topology.mutable_elastic()->set_lease_timeout_ms(3000);
    ASSERT_THAT(coordinator_.ApplyTopology(topology), IsOk());
    for (int i = 0; i < 8; ++i) {
      auto member = RegisterMember(coordinator_, AgentRegistration("llama", i));
      ASSERT_THAT(member, IsOk());
      members_.push_back(*member);
    }
    coordinator_.Tick();
  }

  void HeartbeatAllBut(size_t skip) {
    for (size_t i = 0; i < members_.size(); ++i) {
      if (i != skip) ASSERT_THAT(Heartbeat(coordinator_, members_[i]), IsOk());
    }
  }

  v1::ClusterStatus Status() {
    absl::StatusOr<v1::ClusterStatus> status = coordinator_.GetStatus("llama");
    EXPECT_THAT(status, IsOk());
    return status.ok() ? *status : v1::ClusterStatus();
  }

  store::MemoryStateStore store_;
  FakeClock clock_;
  Coordinator coordinator_{&store_, &clock_};
  std::vector<v1::MemberCredentials> members_;
};

// Nobody is declared lost while nobody is heard. Once members are heard again, every lease
// starts anew from then: a member whose connection comes back later, within a lease, is not lost
// either; one that stays silent for a whole lease after that is.
TEST_F(CoordinatorHearingTest, ADaemonThatHearsNoMemberHoldsThemAllAndStartsTheirLeasesAnew) {
  clock_.Advance(absl::Seconds(10));  // more than 3 leases without a sign of life
  coordinator_.Tick();
  v1::ClusterStatus status = Status();
  EXPECT_EQ(status.epoch(), 1);
  EXPECT_EQ(status.lost_members(), 0);
  EXPECT_EQ(status.held_members(), 8);

  HeartbeatAllBut(7);
  coordinator_.Tick();
  clock_.Advance(absl::Seconds(2.5));
  ASSERT_THAT(Heartbeat(coordinator_, members_[7]), IsOk());
  coordinator_.Tick();
  status = Status();
  EXPECT_EQ(status.epoch(), 1);
  EXPECT_EQ(status.lost_members(), 0);
  EXPECT_EQ(status.held_members(), 0);

  // Member 5 stays silent while the others are heard: lost once its new lease (from 10 s) ends.
  clock_.Advance(absl::Seconds(1));
  HeartbeatAllBut(5);
  coordinator_.Tick();
  status = Status();
  EXPECT_EQ(status.epoch(), 2);
  EXPECT_EQ(status.lost_members(), 1);
  EXPECT_EQ(status.world_size(), 4);
}

// Heard members of one cluster are evidence for every cluster: a cluster whose every member is
// silent while the daemon hears another cluster loses them.
TEST_F(CoordinatorHearingTest, ASilentClusterIsLostWhileAnotherClusterIsHeard) {
  v1::Topology other = MeshTopology("other", {{"tp", 2}});
  other.mutable_elastic()->set_lease_timeout_ms(3000);
  ASSERT_THAT(coordinator_.ApplyTopology(other), IsOk());
  std::vector<v1::MemberCredentials> heard;
  for (int i = 0; i < 2; ++i) {
    auto member = RegisterMember(coordinator_, AgentRegistration("other", i));
    ASSERT_THAT(member, IsOk());
    heard.push_back(*member);
  }
  for (int step = 0; step < 8; ++step) {
    clock_.Advance(absl::Milliseconds(500));
    for (const v1::MemberCredentials& member : heard) {
      ASSERT_THAT(Heartbeat(coordinator_, member), IsOk());
    }
    coordinator_.Tick();
  }
  const v1::ClusterStatus status = Status();
  EXPECT_EQ(status.lost_members(), 8);
  EXPECT_EQ(status.held_members(), 0);
}

}  // namespace
}  // namespace splitd::daemon
