#include "daemon/event_metrics.h"

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/metrics.h"
#include "common/status_matchers.h"
#include "daemon/coordinator.h"
#include "daemon/event_log.h"
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
using ::testing::Not;

v1::Event EpochStarted(const std::string& reason, double detect_ms = 0,
                       v1::EpochCause cause = v1::EPOCH_CAUSE_UNSPECIFIED) {
  v1::Event event;
  event.set_kind(v1::EVENT_KIND_EPOCH_STARTED);
  event.set_reason(reason);
  event.set_cause(cause);
  if (detect_ms > 0) event.mutable_timings()->set_detect_ms(detect_ms);
  return event;
}

TEST(EventMetricsTest, CountsTheCausesOfARealCoordinatorsEpochs) {
  store::MemoryStateStore store;
  FakeClock clock;
  EventLog events;
  metrics::Registry registry;
  EventMetrics metrics(&events, &registry);
  Coordinator coordinator(&store, &clock, &events);
  ASSERT_THAT(coordinator.Recover(), IsOk());

  v1::Topology topology = MeshTopology("llama", {{"tp", 2}, {"pp", 2}, {"dp", 2}});
  topology.mutable_elastic()->set_lease_timeout_ms(3000);
  ASSERT_THAT(coordinator.ApplyTopology(topology), IsOk());  // epoch 1
  std::vector<v1::MemberCredentials> members;
  for (int i = 0; i < 8; ++i) {
    auto member = RegisterMember(coordinator, AgentRegistration("llama", i));
    ASSERT_THAT(member, IsOk());
    members.push_back(*member);
  }
  // Member 5 stops heartbeating: its lease expires 3.5 s after its last sign of life.
  clock.Advance(absl::Seconds(2));
  for (int i = 0; i < 8; ++i) {
    if (i == 5) continue;
    ASSERT_THAT(Heartbeat(coordinator, members[static_cast<size_t>(i)]), IsOk());
  }
  clock.Advance(absl::Seconds(1.5));
  for (int i = 0; i < 8; ++i) {  // the others are heard after member 5's lease ran out
    if (i == 5) continue;
    ASSERT_THAT(Heartbeat(coordinator, members[static_cast<size_t>(i)]), IsOk());
  }
  coordinator.Tick();                                       // epoch 2: replica dropped
  ASSERT_THAT(Heartbeat(coordinator, members[5]), IsOk());  // epoch 3: scaled up again
  topology.mutable_dims(0)->set_size(4);
  ASSERT_THAT(coordinator.ApplyTopology(topology), IsOk());  // epoch 4

  const std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("splitd_epoch_transitions_total{cause=\"created\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_epoch_transitions_total{cause=\"member_lost\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_epoch_transitions_total{cause=\"scale_up\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_epoch_transitions_total{cause=\"topology_changed\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("cause=\"other\"")));
  EXPECT_THAT(text, HasSubstr("splitd_reconfiguration_phase_seconds_count{phase=\"detect\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_reconfiguration_phase_seconds_sum{phase=\"detect\"} 3.5\n"));
  // Planning is timed for the epochs the daemon decided itself (2 and 3).
  EXPECT_THAT(text, HasSubstr("splitd_reconfiguration_phase_seconds_count{phase=\"plan\"} 2\n"));
}

TEST(EventMetricsTest, ReadyEpochsObserveEveryLaterPhase) {
  EventLog events;
  metrics::Registry registry;
  EventMetrics metrics(&events, &registry);

  v1::Event bootstrapping;
  bootstrapping.set_kind(v1::EVENT_KIND_PHASE_CHANGED);
  bootstrapping.set_phase(v1::PHASE_BOOTSTRAPPING);
  bootstrapping.mutable_timings()->set_deliver_ms(5);
  events.Append(bootstrapping, absl::Now());
  v1::Event ready;
  ready.set_kind(v1::EVENT_KIND_PHASE_CHANGED);
  ready.set_phase(v1::PHASE_READY);
  v1::EpochTimings* timings = ready.mutable_timings();
  timings->set_deliver_ms(2);
  timings->set_bootstrap_ms(250);
  timings->set_split_ms(1500);
  timings->set_validate_ms(40);
  timings->set_ready_ms(1800);
  events.Append(ready, absl::Now());

  const std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("splitd_reconfiguration_phase_seconds_sum{phase=\"deliver\"} 0.002\n"
                              "splitd_reconfiguration_phase_seconds_count{phase=\"deliver\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_reconfiguration_phase_seconds_bucket{phase=\"bootstrap\","
                              "le=\"0.25\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_reconfiguration_phase_seconds_bucket{phase=\"split\","
                              "le=\"1\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("splitd_reconfiguration_phase_seconds_sum{phase=\"split\"} 1.5\n"));
  EXPECT_THAT(text,
              HasSubstr("splitd_reconfiguration_phase_seconds_sum{phase=\"validate\"} 0.04\n"));
  EXPECT_THAT(text, HasSubstr("splitd_reconfiguration_phase_seconds_sum{phase=\"ready\"} 1.8\n"));
  EXPECT_THAT(text, Not(HasSubstr("phase=\"detect\"")));
  EXPECT_THAT(text, Not(HasSubstr("splitd_epoch_transitions_total{")));
}

TEST(EventMetricsTest, CountsOnlyEventsAfterItsStartAndStopsWhenDestroyed) {
  EventLog events;
  events.Append(
      EpochStarted("topology applied: world 2, 1 group kinds", 0, v1::EPOCH_CAUSE_CREATED),
      absl::Now());
  metrics::Registry registry;
  {
    EventMetrics metrics(&events, &registry);
    events.Append(EpochStarted("topology changed: world 4, 1 group kinds", 0,
                               v1::EPOCH_CAUSE_TOPOLOGY_CHANGED),
                  absl::Now());
  }
  events.Append(
      EpochStarted("topology changed: world 8, 1 group kinds", 0, v1::EPOCH_CAUSE_TOPOLOGY_CHANGED),
      absl::Now());
  const std::string text = registry.Render();
  EXPECT_THAT(text, Not(HasSubstr("cause=\"created\"")));
  EXPECT_THAT(text, HasSubstr("splitd_epoch_transitions_total{cause=\"topology_changed\"} 1\n"));
}

TEST(EventMetricsTest, EpochCauseNamesEachCause) {
  const std::vector<std::pair<v1::EpochCause, const char*>> cases = {
      {v1::EPOCH_CAUSE_CREATED, "created"},
      {v1::EPOCH_CAUSE_TOPOLOGY_CHANGED, "topology_changed"},
      {v1::EPOCH_CAUSE_RECONFIGURED, "reconfigure"},
      {v1::EPOCH_CAUSE_MEMBER_LOST, "member_lost"},
      {v1::EPOCH_CAUSE_MEMBER_EXCLUDED, "member_excluded"},
      {v1::EPOCH_CAUSE_MEMBERS_RETURNED, "members_returned"},
      {v1::EPOCH_CAUSE_SCALED_UP, "scale_up"},
      {v1::EPOCH_CAUSE_UNSPECIFIED, "other"},
  };
  for (const auto& [cause, name] : cases) {
    EXPECT_EQ(EventMetrics::EpochCause(EpochStarted("any reason", 0, cause)), name)
        << v1::EpochCause_Name(cause);
  }
}

TEST(EventMetricsTest, CountsAStallOfARealCoordinatorByLayerAndPhase) {
  store::MemoryStateStore store;
  FakeClock clock;
  EventLog events;
  metrics::Registry registry;
  EventMetrics metrics(&events, &registry);
  Coordinator coordinator(&store, &clock, &events);
  ASSERT_THAT(coordinator.Recover(), IsOk());

  v1::Topology topology = MeshTopology("llama", {{"tp", 2}, {"dp", 2}});
  topology.mutable_elastic()->set_lease_timeout_ms(600000);
  topology.mutable_deadlines()->set_bootstrap_ms(30000);
  ASSERT_THAT(coordinator.ApplyTopology(topology), IsOk());
  for (int i = 0; i < 4; ++i) {
    ASSERT_THAT(RegisterMember(coordinator, AgentRegistration("llama", i)), IsOk());
  }
  clock.Advance(absl::Seconds(29));
  coordinator.Tick();
  EXPECT_THAT(registry.Render(), Not(HasSubstr("splitd_stalls_total{")));
  clock.Advance(absl::Seconds(2));
  coordinator.Tick();  // nobody reported within 30 s of the plan
  coordinator.Tick();  // the epoch is FAILED: no second stall
  EXPECT_THAT(registry.Render(),
              HasSubstr("splitd_stalls_total{layer=\"agent\",phase=\"PLANNED\"} 1\n"));
}

TEST(EventMetricsTest, StallLabelsComeFromTheReasonAndNeverTakeFreeText) {
  const std::vector<std::pair<std::string, std::pair<std::string, std::string>>> cases = {
      {"rank 5 (pod p, node n) stuck in workload SPLITTING (creating dp) for 31.2 s: deadline "
       "workload_ms 30000",
       {"workload", "SPLITTING"}},
      {"rank 0 (pod a b, node c) stuck in agent BOOTSTRAPPING for 61.0 s: deadline "
       "bootstrap_ms 60000",
       {"agent", "BOOTSTRAPPING"}},
      {"rank 1 (pod p, node n) stuck in agent VALIDATING", {"agent", "VALIDATING"}},
      {"rank 1 stuck in somebody READY for 1 s", {"other", "other"}},
      {"rank 1 stuck in workload", {"other", "other"}},
      {"no such words", {"other", "other"}},
  };
  for (const auto& [reason, labels] : cases) {
    v1::Event event;
    event.set_kind(v1::EVENT_KIND_STALLED);
    event.set_reason(reason);
    EXPECT_EQ(EventMetrics::StallLabels(event), labels) << reason;
  }
}

}  // namespace
}  // namespace splitd::daemon
