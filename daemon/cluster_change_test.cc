#include "daemon/cluster_change.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace splitd::daemon {
namespace {

using ::testing::HasSubstr;

core::Member MemberAt(const std::string& id, int64_t rank) {
  core::Member member;
  member.member_id = id;
  member.rank = rank;
  member.identity.set_cluster("demo");
  member.identity.set_pod("pod-3");
  member.identity.set_node("node-1");
  member.identity.set_local_index(2);
  return member;
}

plan::SplitPlan PlanOf(int64_t epoch, int64_t world, int kinds) {
  plan::SplitPlan plan;
  plan.cluster = "demo";
  plan.epoch = epoch;
  plan.world_size = world;
  plan.kinds.resize(kinds);
  plan.fingerprint = "0123456789abcdef0123";
  return plan;
}

TEST(SaidTest, EventNamesItsMemberAndRankOrNone) {
  const core::Member member = MemberAt("m-4", 6);
  v1::EpochTimings timings;
  timings.set_detect_ms(12);
  const v1::Event named = said::Event(v1::EVENT_KIND_STALLED, "demo", 3, &member, v1::PHASE_FAILED,
                                      "late", &timings, v1::EPOCH_CAUSE_SCALED_UP);
  EXPECT_EQ(named.cluster(), "demo");
  EXPECT_EQ(named.epoch(), 3);
  EXPECT_EQ(named.kind(), v1::EVENT_KIND_STALLED);
  EXPECT_EQ(named.member_id(), "m-4");
  EXPECT_EQ(named.rank(), 6);
  EXPECT_EQ(named.phase(), v1::PHASE_FAILED);
  EXPECT_EQ(named.reason(), "late");
  EXPECT_EQ(named.timings().detect_ms(), 12);
  EXPECT_EQ(named.cause(), v1::EPOCH_CAUSE_SCALED_UP);
  // The time is the event log's to stamp when the change is published.
  EXPECT_FALSE(named.has_time());

  const v1::Event unnamed =
      said::Event(v1::EVENT_KIND_DEGRADED, "demo", 3, nullptr, v1::PHASE_DEGRADED, "short");
  EXPECT_EQ(unnamed.member_id(), "");
  EXPECT_EQ(unnamed.rank(), -1);
  EXPECT_FALSE(unnamed.has_timings());
}

TEST(SaidTest, TopologyAppliedSaysCreatedOrUpdated) {
  const plan::SplitPlan plan = PlanOf(1, 8, 3);
  const Announcement created =
      said::TopologyApplied(plan, "topology applied", v1::PHASE_PENDING, true);
  EXPECT_EQ(created.level, Announcement::Level::kInfo);
  EXPECT_EQ(created.line,
            "cluster demo created at epoch 1 (world 8, 3 group kinds, fingerprint 0123456789ab)");
  ASSERT_TRUE(created.event.has_value());
  EXPECT_EQ(created.event->kind(), v1::EVENT_KIND_EPOCH_STARTED);
  EXPECT_EQ(created.event->reason(), "topology applied: world 8, 3 group kinds");
  EXPECT_EQ(created.event->cause(), v1::EPOCH_CAUSE_CREATED);

  const Announcement updated =
      said::TopologyApplied(PlanOf(2, 8, 3), "topology changed", v1::PHASE_PENDING, false);
  EXPECT_THAT(updated.line, HasSubstr("cluster demo updated at epoch 2"));
  EXPECT_EQ(updated.event->cause(), v1::EPOCH_CAUSE_TOPOLOGY_CHANGED);
}

TEST(SaidTest, EpochStartedCarriesDetectAndPlanTimes) {
  const Announcement said =
      said::EpochStarted(PlanOf(5, 6, 2), 4, "rank 3 lost: dp 4 -> 3", /*shrinks=*/true,
                         v1::PHASE_PENDING, 1018, 2.5, v1::EPOCH_CAUSE_MEMBER_LOST);
  EXPECT_EQ(said.line,
            "cluster demo epoch 4 -> 5: rank 3 lost: dp 4 -> 3 (world 6, fingerprint "
            "0123456789ab, planned in 2.5 ms, ranks only removed)");
  ASSERT_TRUE(said.event.has_value());
  EXPECT_EQ(said.event->epoch(), 5);
  EXPECT_EQ(said.event->timings().detect_ms(), 1018);
  EXPECT_EQ(said.event->timings().plan_ms(), 2.5);
  EXPECT_EQ(said.event->cause(), v1::EPOCH_CAUSE_MEMBER_LOST);
}

TEST(SaidTest, RegistrationSaysJoinedReturnedOrOnlyLogsARejoin) {
  const core::Member member = MemberAt("m-7", -1);
  v1::MemberIdentity identity = member.identity;

  const Announcement joined =
      said::Registered(identity, {&member, false, false, /*assigned=*/true, 2, v1::PHASE_PENDING});
  EXPECT_EQ(joined.line,
            "cluster demo: member registered: m-7 (pod pod-3, node node-1, local index 2); world "
            "complete, ranks assigned for epoch 2");
  ASSERT_TRUE(joined.event.has_value());
  EXPECT_EQ(joined.event->kind(), v1::EVENT_KIND_MEMBER_JOINED);
  EXPECT_EQ(joined.event->reason(), "m-7 (pod pod-3, node node-1) joined");

  const Announcement returned =
      said::Registered(identity, {&member, true, true, false, 2, v1::PHASE_READY});
  EXPECT_THAT(returned.line, HasSubstr("member returned: m-7"));
  EXPECT_EQ(returned.event->kind(), v1::EVENT_KIND_MEMBER_RETURNED);
  EXPECT_EQ(returned.event->reason(), "m-7 (pod pod-3, node node-1) returned");

  const Announcement rejoined =
      said::Registered(identity, {&member, true, false, false, 2, v1::PHASE_READY});
  EXPECT_THAT(rejoined.line, HasSubstr("member rejoined: m-7"));
  EXPECT_FALSE(rejoined.event.has_value());
}

TEST(SaidTest, LossSaysHowItWasFound) {
  const core::Member member = MemberAt("m-2", 1);
  const Announcement by_stream = said::MemberLost("demo", 4, member, /*by_stream=*/true);
  EXPECT_EQ(by_stream.level, Announcement::Level::kWarn);
  EXPECT_EQ(by_stream.line,
            "cluster demo: member m-2 (rank 1, pod pod-3) lost: its plan stream closed and did not "
            "come back");
  EXPECT_EQ(by_stream.event->reason(), "m-2 (rank 1, pod pod-3) lost: plan stream closed");
  EXPECT_EQ(by_stream.event->rank(), 1);

  const Announcement by_lease = said::MemberLost("demo", 4, member, /*by_stream=*/false);
  EXPECT_THAT(by_lease.line, HasSubstr("no heartbeat for its lease"));
  EXPECT_EQ(by_lease.event->reason(), "m-2 (rank 1, pod pod-3) lost: lease expired");
}

TEST(SaidTest, ReadyPhaseSaysItsTimings) {
  v1::EpochTimings timings;
  timings.set_detect_ms(1000);
  timings.set_plan_ms(1);
  timings.set_deliver_ms(2);
  timings.set_bootstrap_ms(30);
  timings.set_split_ms(40);
  timings.set_validate_ms(5);
  timings.set_ready_ms(77);
  const Announcement ready = said::PhaseChanged("demo", 2, v1::PHASE_READY, timings, "ignored");
  const std::string reason =
      "READY: detect 1000 ms, plan 1 ms, deliver 2 ms, bootstrap 30 ms, split 40 ms, validate 5 "
      "ms; 77 ms from plan to READY";
  EXPECT_EQ(ready.line, "cluster demo epoch 2: PHASE_READY: " + reason);
  EXPECT_EQ(ready.event->reason(), reason);
  EXPECT_EQ(ready.event->timings().ready_ms(), 77);

  const Announcement failed =
      said::PhaseChanged("demo", 2, v1::PHASE_FAILED, timings, "rank 3: dp failed");
  EXPECT_EQ(failed.line, "cluster demo epoch 2: PHASE_FAILED: rank 3: dp failed");

  const Announcement quiet = said::PhaseChanged("demo", 2, v1::PHASE_SPLITTING, timings, "");
  EXPECT_EQ(quiet.line, "cluster demo epoch 2: PHASE_SPLITTING");
}

TEST(SaidTest, NoteIsLoggedOnly) {
  const Announcement note = said::Note("cluster demo: join token replaced");
  EXPECT_EQ(note.line, "cluster demo: join token replaced");
  EXPECT_FALSE(note.event.has_value());
  const Announcement excluded = said::MemberExcluded("demo", 3, MemberAt("m-1", 0));
  EXPECT_TRUE(excluded.line.empty());
  EXPECT_EQ(excluded.event->reason(), "m-1 (rank 0, node node-1) excluded");
}

}  // namespace
}  // namespace splitd::daemon
