#include "daemon/daemon_metrics.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/metrics.h"
#include "common/status_matchers.h"
#include "common/version.h"
#include "daemon/coordinator.h"
#include "daemon/rendezvous_spaces.h"
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
using ::testing::HasSubstr;

v1::Topology Tp2(const std::string& cluster) {
  v1::Topology topology = MeshTopology(cluster, {{"tp", 2}});
  topology.mutable_elastic()->set_lease_timeout_ms(3000);
  return topology;
}

class DaemonMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(coordinator_.Recover(), IsOk());
    AddDaemonMetrics(&registry_, &coordinator_, &spaces_);
  }

  store::MemoryStateStore store_;
  FakeClock clock_;
  Coordinator coordinator_{&store_, &clock_};
  RendezvousSpaces spaces_;
  metrics::Registry registry_;
};

TEST_F(DaemonMetricsTest, EmptyDaemonListsEveryPhaseAtZero) {
  const std::string text = registry_.Render();
  EXPECT_THAT(text, HasSubstr(absl::StrCat("splitd_build_info{version=\"", kVersion, "\"} 1\n")));
  EXPECT_THAT(text, HasSubstr("# TYPE splitd_clusters gauge\n"
                              "splitd_clusters{state=\"BOOTSTRAPPING\"} 0\n"
                              "splitd_clusters{state=\"DEGRADED\"} 0\n"
                              "splitd_clusters{state=\"FAILED\"} 0\n"
                              "splitd_clusters{state=\"PENDING\"} 0\n"
                              "splitd_clusters{state=\"PLANNED\"} 0\n"
                              "splitd_clusters{state=\"READY\"} 0\n"
                              "splitd_clusters{state=\"SPLITTING\"} 0\n"
                              "splitd_clusters{state=\"VALIDATING\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("splitd_members{state=\"alive\"} 0\n"
                              "splitd_members{state=\"excluded\"} 0\n"
                              "splitd_members{state=\"lost\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("splitd_rendezvous_keys 0\n"));
}

TEST_F(DaemonMetricsTest, GaugesFollowTheCoordinatorAndTheSpaces) {
  ASSERT_THAT(coordinator_.ApplyTopology(Tp2("a")), IsOk());
  ASSERT_THAT(coordinator_.ApplyTopology(Tp2("b")), IsOk());
  ASSERT_THAT(coordinator_.ApplyTopology(Tp2("c")), IsOk());
  std::vector<v1::MemberCredentials> b_members;
  for (int i = 0; i < 2; ++i) {
    ASSERT_THAT(RegisterMember(coordinator_, AgentRegistration("a", i)), IsOk());
    auto member = RegisterMember(coordinator_, AgentRegistration("b", i));
    ASSERT_THAT(member, IsOk());
    b_members.push_back(*member);
  }
  ASSERT_THAT(spaces_.Set("a", 1, "k1", "v"), IsOk());
  ASSERT_THAT(spaces_.Set("b", 1, "k1", "v"), IsOk());

  std::string text = registry_.Render();
  EXPECT_THAT(text, HasSubstr("splitd_clusters{state=\"PENDING\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_clusters{state=\"PLANNED\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("splitd_members{state=\"alive\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("splitd_members{state=\"lost\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("splitd_rendezvous_keys 2\n"));

  // Cluster a's members stop heartbeating; b's keep their leases.
  clock_.Advance(absl::Milliseconds(2000));
  for (const v1::MemberCredentials& member : b_members) {
    ASSERT_THAT(Heartbeat(coordinator_, member), IsOk());
  }
  clock_.Advance(absl::Milliseconds(2000));
  // Heard after a's leases ran out: the daemon is not the one cut off.
  for (const v1::MemberCredentials& member : b_members) {
    ASSERT_THAT(Heartbeat(coordinator_, member), IsOk());
  }
  coordinator_.Tick();
  text = registry_.Render();
  EXPECT_THAT(text, HasSubstr("splitd_members{state=\"alive\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("splitd_members{state=\"lost\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("splitd_members{state=\"excluded\"} 0\n"));
}

}  // namespace
}  // namespace splitd::daemon
