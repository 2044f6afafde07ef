#include "daemon/coordinator.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/sha256.h"
#include "common/status_matchers.h"
#include "daemon/store/memory_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace splitd::daemon {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::Topology Tp2Pp2Dp2(const std::string& cluster) {
  v1::Topology topology;
  topology.set_cluster(cluster);
  for (const char* name : {"tp", "pp", "dp"}) {
    v1::Dim* dim = topology.add_dims();
    dim->set_name(name);
    dim->set_size(2);
  }
  return topology;
}

// A store whose writes fail, as a full disk would make them: a commit holding a record of a
// failing kind fails whole.
class FailingStore : public store::MemoryStateStore {
 public:
  absl::Status Commit(absl::Span<store::Change> changes) override {
    for (const store::Change& change : changes) {
      for (const internal::LogRecord& record : change.records) {
        if ((fail_members && record.has_add_member()) ||
            (fail_clusters && record.has_put_cluster())) {
          const absl::Status full = absl::ResourceExhaustedError("no space left on device");
          for (store::Change& failed : changes) failed.status = full;
          return full;
        }
      }
    }
    return MemoryStateStore::Commit(changes);
  }
  bool fail_clusters = true;
  bool fail_members = true;
};

v1::RegisterRequest Agent(int index) {
  v1::RegisterRequest request;
  request.mutable_identity()->set_cluster("llama");
  request.mutable_identity()->set_pod(absl::StrCat("pod-", index));
  request.mutable_identity()->set_node(absl::StrCat("node-", index / 4));
  request.mutable_identity()->set_host("127.0.0.1");
  request.mutable_identity()->set_local_index(index % 4);
  request.mutable_identity()->set_incarnation(absl::StrCat("inc-", index));
  request.mutable_capabilities()->add_backends("cpu:gloo");
  return request;
}

// Recovers `coordinator` and applies Tp2Pp2Dp2("llama") with a lease of `lease_ms`.
void ApplyLlamaWithLease(Coordinator& coordinator, int64_t lease_ms) {
  ASSERT_THAT(coordinator.Recover(), IsOk());
  v1::Topology topology = Tp2Pp2Dp2("llama");
  topology.mutable_elastic()->set_lease_timeout_ms(lease_ms);
  ASSERT_THAT(coordinator.ApplyTopology(topology), IsOk());
}

// Heartbeats every member of `members` but the one at `skip`.
void HeartbeatAllBut(Coordinator& coordinator, const std::vector<v1::MemberCredentials>& members,
                     size_t skip) {
  for (size_t i = 0; i < members.size(); ++i) {
    if (i == skip) continue;
    v1::HeartbeatRequest heartbeat;
    *heartbeat.mutable_member() = members[i];
    ASSERT_THAT(coordinator.Heartbeat(heartbeat), IsOk());
  }
}

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_THAT(coordinator_.Recover(), IsOk()); }

  store::MemoryStateStore store_;
  FakeClock clock_;
  Coordinator coordinator_{&store_, &clock_};
};

TEST_F(CoordinatorTest, NewClusterStartsAtEpochOneAndIsStored) {
  auto result = coordinator_.ApplyTopology(Tp2Pp2Dp2("llama"));
  ASSERT_THAT(result, IsOk());
  EXPECT_TRUE(result->created);
  EXPECT_TRUE(result->changed);
  EXPECT_EQ(result->cluster.name(), "llama");
  EXPECT_EQ(result->cluster.epoch(), 1);
  EXPECT_EQ(result->cluster.world_size(), 8);
  EXPECT_EQ(result->cluster.group_kinds(), 3);
  EXPECT_EQ(result->cluster.state(), v1::PHASE_PENDING);
  EXPECT_EQ(result->cluster.fingerprint().size(), 64u);
  EXPECT_EQ(result->cluster.topology().method(), "split");

  auto stored = store_.LoadClusters();
  ASSERT_THAT(stored, IsOk());
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0].record.epoch, 1);
  EXPECT_EQ((*stored)[0].record.topology.cluster(), "llama");
}

TEST_F(CoordinatorTest, SameDocumentTwiceIsANoOp) {
  auto first = coordinator_.ApplyTopology(Tp2Pp2Dp2("llama"));
  ASSERT_THAT(first, IsOk());
  clock_.Advance(absl::Seconds(30));
  auto second = coordinator_.ApplyTopology(Tp2Pp2Dp2("llama"));
  ASSERT_THAT(second, IsOk());
  EXPECT_FALSE(second->created);
  EXPECT_FALSE(second->changed);
  EXPECT_EQ(second->cluster.epoch(), 1);
  EXPECT_EQ(second->cluster.fingerprint(), first->cluster.fingerprint());
  EXPECT_EQ(second->cluster.update_time().seconds(), first->cluster.update_time().seconds());
}

TEST_F(CoordinatorTest, DefaultsSpelledOutAreTheSameDocument) {
  ASSERT_THAT(coordinator_.ApplyTopology(Tp2Pp2Dp2("llama")), IsOk());
  v1::Topology explicit_defaults = Tp2Pp2Dp2("llama");
  explicit_defaults.set_method("split");
  explicit_defaults.set_backend("cpu:gloo");
  auto again = coordinator_.ApplyTopology(explicit_defaults);
  ASSERT_THAT(again, IsOk());
  EXPECT_FALSE(again->changed);
  EXPECT_EQ(again->cluster.epoch(), 1);
}

TEST_F(CoordinatorTest, ChangedDocumentStartsTheNextEpoch) {
  auto first = coordinator_.ApplyTopology(Tp2Pp2Dp2("llama"));
  ASSERT_THAT(first, IsOk());
  clock_.Advance(absl::Seconds(5));
  v1::Topology changed = Tp2Pp2Dp2("llama");
  changed.mutable_dims(2)->set_size(4);
  auto second = coordinator_.ApplyTopology(changed);
  ASSERT_THAT(second, IsOk());
  EXPECT_FALSE(second->created);
  EXPECT_TRUE(second->changed);
  EXPECT_EQ(second->cluster.epoch(), 2);
  EXPECT_EQ(second->cluster.world_size(), 16);
  EXPECT_NE(second->cluster.fingerprint(), first->cluster.fingerprint());
  EXPECT_EQ(second->cluster.create_time().seconds(), first->cluster.create_time().seconds());
  EXPECT_EQ(second->cluster.update_time().seconds(), first->cluster.update_time().seconds() + 5);
}

TEST_F(CoordinatorTest, InvalidTopologyIsRefusedAndNothingIsStored) {
  v1::Topology bad = Tp2Pp2Dp2("llama");
  bad.mutable_dims(1)->set_size(0);
  EXPECT_THAT(coordinator_.ApplyTopology(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dims[1].size")));
  auto stored = store_.LoadClusters();
  ASSERT_THAT(stored, IsOk());
  EXPECT_TRUE(stored->empty());
  EXPECT_THAT(coordinator_.GetCluster("llama"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("llama")));
}

TEST_F(CoordinatorTest, InvalidUpdateKeepsThePreviousEpoch) {
  ASSERT_THAT(coordinator_.ApplyTopology(Tp2Pp2Dp2("llama")), IsOk());
  v1::Topology bad = Tp2Pp2Dp2("llama");
  bad.add_groups()->set_name("tp");  // neither dims nor split_ranks
  EXPECT_THAT(coordinator_.ApplyTopology(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("groups[0]")));
  auto cluster = coordinator_.GetCluster("llama");
  ASSERT_THAT(cluster, IsOk());
  EXPECT_EQ(cluster->epoch(), 1);
  EXPECT_EQ(cluster->world_size(), 8);
}

TEST_F(CoordinatorTest, StoreFailureIsReturnedAndNothingIsPublished) {
  FailingStore failing;
  Coordinator coordinator(&failing, &clock_);
  ASSERT_THAT(coordinator.Recover(), IsOk());
  EXPECT_THAT(coordinator.ApplyTopology(Tp2Pp2Dp2("llama")),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("no space")));
  EXPECT_THAT(coordinator.GetCluster("llama"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("llama")));
}

TEST_F(CoordinatorTest, ListsClustersSortedByName) {
  ASSERT_THAT(coordinator_.ApplyTopology(Tp2Pp2Dp2("zeta")), IsOk());
  ASSERT_THAT(coordinator_.ApplyTopology(Tp2Pp2Dp2("alpha")), IsOk());
  auto clusters = coordinator_.ListClusters();
  ASSERT_THAT(clusters, IsOk());
  ASSERT_EQ(clusters->size(), 2u);
  EXPECT_EQ((*clusters)[0].name(), "alpha");
  EXPECT_EQ((*clusters)[1].name(), "zeta");
}

TEST_F(CoordinatorTest, DeleteReturnsTheLastEpochAndForgetsTheCluster) {
  ASSERT_THAT(coordinator_.ApplyTopology(Tp2Pp2Dp2("llama")), IsOk());
  v1::Topology changed = Tp2Pp2Dp2("llama");
  changed.set_method("init");
  ASSERT_THAT(coordinator_.ApplyTopology(changed), IsOk());
  auto epoch = coordinator_.DeleteCluster("llama");
  ASSERT_THAT(epoch, IsOk());
  EXPECT_EQ(*epoch, 2);
  EXPECT_THAT(coordinator_.GetCluster("llama"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("llama")));
  EXPECT_THAT(coordinator_.DeleteCluster("llama"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("llama")));
  auto stored = store_.LoadClusters();
  ASSERT_THAT(stored, IsOk());
  EXPECT_TRUE(stored->empty());
  // A re-created cluster starts over.
  auto again = coordinator_.ApplyTopology(Tp2Pp2Dp2("llama"));
  ASSERT_THAT(again, IsOk());
  EXPECT_TRUE(again->created);
  EXPECT_EQ(again->cluster.epoch(), 1);
}

TEST_F(CoordinatorTest, EmptyNamesAreInvalid) {
  EXPECT_THAT(coordinator_.GetCluster(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("name")));
  EXPECT_THAT(coordinator_.DeleteCluster(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("name")));
  EXPECT_THAT(coordinator_.GetPlan("", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cluster")));
  EXPECT_THAT(coordinator_.GetStatus(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cluster")));
}

TEST_F(CoordinatorTest, PlanIsExpandedAndFilteredByGroupAndRank) {
  ASSERT_THAT(coordinator_.ApplyTopology(Tp2Pp2Dp2("llama")), IsOk());
  auto plan = coordinator_.GetPlan("llama", {});
  ASSERT_THAT(plan, IsOk());
  EXPECT_EQ(plan->epoch(), 1);
  ASSERT_EQ(plan->groups_size(), 3);
  EXPECT_EQ(plan->groups(0).name(), "tp");
  EXPECT_EQ(plan->groups(0).split_ranks_size(), 4);
  EXPECT_THAT(plan->groups(1).split_ranks(1).ranks(), ElementsAre(1, 3));

  plan::PlanFilter filter;
  filter.group = "dp";
  filter.rank = 5;
  auto filtered = coordinator_.GetPlan("llama", filter);
  ASSERT_THAT(filtered, IsOk());
  ASSERT_EQ(filtered->groups_size(), 1);
  ASSERT_EQ(filtered->groups(0).split_ranks_size(), 1);
  EXPECT_THAT(filtered->groups(0).split_ranks(0).ranks(), ElementsAre(1, 5));

  filter.group = "xp";
  EXPECT_THAT(coordinator_.GetPlan("llama", filter),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("xp")));
}

TEST_F(CoordinatorTest, StatusOfAFreshClusterIsPendingWithEveryKind) {
  ASSERT_THAT(coordinator_.ApplyTopology(Tp2Pp2Dp2("llama")), IsOk());
  auto status = coordinator_.GetStatus("llama");
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->state(), v1::PHASE_PENDING);
  EXPECT_EQ(status->epoch(), 1);
  EXPECT_EQ(status->world_size(), 8);
  ASSERT_EQ(status->groups_size(), 3);
  EXPECT_EQ(status->groups(2).kind(), "dp");
  EXPECT_EQ(status->groups(2).groups(), 4);
  EXPECT_EQ(status->groups(2).ready(), 0);
}

TEST(CoordinatorRecoveryTest, CallsBeforeRecoveryAreUnavailable) {
  store::MemoryStateStore store;
  FakeClock clock;
  Coordinator coordinator(&store, &clock);
  EXPECT_THAT(coordinator.ApplyTopology(Tp2Pp2Dp2("llama")),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("starting")));
  EXPECT_THAT(coordinator.ListClusters(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("starting")));
}

TEST(CoordinatorRecoveryTest, RecoverRestoresClustersWithTheSamePlans) {
  store::MemoryStateStore store;
  FakeClock clock;
  std::string fingerprint;
  {
    Coordinator first(&store, &clock);
    ASSERT_THAT(first.Recover(), IsOk());
    auto applied = first.ApplyTopology(Tp2Pp2Dp2("llama"));
    ASSERT_THAT(applied, IsOk());
    v1::Topology changed = Tp2Pp2Dp2("llama");
    changed.mutable_dims(0)->set_size(4);
    auto updated = first.ApplyTopology(changed);
    ASSERT_THAT(updated, IsOk());
    fingerprint = updated->cluster.fingerprint();
  }
  Coordinator second(&store, &clock);
  ASSERT_THAT(second.Recover(), IsOk());
  auto cluster = second.GetCluster("llama");
  ASSERT_THAT(cluster, IsOk());
  EXPECT_EQ(cluster->epoch(), 2);
  EXPECT_EQ(cluster->world_size(), 16);
  EXPECT_EQ(cluster->fingerprint(), fingerprint);
}

TEST(CoordinatorRecoveryTest, MembersRanksAndReadinessSurviveARestart) {
  store::MemoryStateStore store;
  FakeClock clock;
  std::vector<v1::RegisterResponse> registered;
  v1::ClusterStatus before;
  {
    Coordinator first(&store, &clock);
    ASSERT_THAT(first.Recover(), IsOk());
    ASSERT_THAT(first.ApplyTopology(Tp2Pp2Dp2("llama")), IsOk());
    for (int i = 7; i >= 0; --i) {
      auto response = first.Register(Agent(i));
      ASSERT_THAT(response, IsOk());
      registered.push_back(*response);
    }
    auto status = first.GetStatus("llama");
    ASSERT_THAT(status, IsOk());
    for (const v1::MemberStatus& member : status->members()) {
      v1::ReportGroupStatusRequest report;
      report.mutable_member()->set_cluster("llama");
      report.mutable_member()->set_member_id(member.member_id());
      for (const v1::RegisterResponse& r : registered) {
        if (r.member_id() == member.member_id()) {
          report.mutable_member()->set_session_token(r.session_token());
        }
      }
      report.set_epoch(1);
      report.set_rank(member.rank());
      report.set_fingerprint(status->fingerprint());
      report.set_phase(v1::PHASE_READY);
      for (const char* kind : {"tp", "pp", "dp"}) {
        v1::GroupReport* group = report.add_groups();
        group->set_kind(kind);
        group->set_backend("cpu:gloo");
        group->set_phase(v1::PHASE_READY);
        group->set_allreduce_value(2);
      }
      ASSERT_THAT(first.ReportGroupStatus(report), IsOk());
    }
    auto ready = first.GetStatus("llama");
    ASSERT_THAT(ready, IsOk());
    ASSERT_EQ(ready->state(), v1::PHASE_READY);
    before = *ready;
  }
  // Nothing the store holds is a session token, neither the members nor the reports: only
  // the tokens' digests.
  {
    auto loaded = store.LoadClusters();
    ASSERT_THAT(loaded, IsOk());
    ASSERT_EQ(loaded->size(), 1u);
    ASSERT_EQ((*loaded)[0].reports.size(), 8u);
    std::string everything;
    for (const store::StoredMember& member : (*loaded)[0].members) {
      everything += member.identity.DebugString() + member.session_token_sha256;
    }
    for (const v1::ReportGroupStatusRequest& report : (*loaded)[0].reports) {
      everything += report.DebugString();
    }
    for (const v1::RegisterResponse& r : registered) {
      EXPECT_EQ(everything.find(r.session_token()), std::string::npos);
      EXPECT_NE(everything.find(Sha256::Hex(r.session_token())), std::string::npos);
    }
  }
  Coordinator second(&store, &clock);
  ASSERT_THAT(second.Recover(), IsOk());
  auto after = second.GetStatus("llama");
  ASSERT_THAT(after, IsOk());
  EXPECT_EQ(after->state(), v1::PHASE_READY);
  ASSERT_EQ(after->members_size(), before.members_size());
  for (int i = 0; i < after->members_size(); ++i) {
    EXPECT_EQ(after->members(i).member_id(), before.members(i).member_id());
    EXPECT_EQ(after->members(i).rank(), before.members(i).rank());
  }
  // The store keeps only digests: a member's token from before the restart still works...
  v1::HeartbeatRequest heartbeat;
  heartbeat.mutable_member()->set_cluster("llama");
  heartbeat.mutable_member()->set_member_id(registered[4].member_id());
  heartbeat.mutable_member()->set_session_token(registered[4].session_token());
  EXPECT_THAT(second.Heartbeat(heartbeat), IsOk());
  // ...and the same incarnation registering again gets its member and a fresh token, which
  // replaces the old one.
  auto again = second.Register(Agent(3));
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->member_id(), registered[4].member_id());
  EXPECT_NE(again->session_token(), registered[4].session_token());
  EXPECT_THAT(second.Heartbeat(heartbeat), StatusIs(absl::StatusCode::kUnauthenticated));
  heartbeat.mutable_member()->set_session_token(again->session_token());
  EXPECT_THAT(second.Heartbeat(heartbeat), IsOk());
  // Registering again in the same daemon's life returns the same token.
  auto third = second.Register(Agent(3));
  ASSERT_THAT(third, IsOk());
  EXPECT_EQ(third->session_token(), again->session_token());
}

TEST(CoordinatorRecoveryTest, RefusedMemberWriteAdmitsNobody) {
  FailingStore store;
  store.fail_clusters = false;
  FakeClock clock;
  Coordinator coordinator(&store, &clock);
  ASSERT_THAT(coordinator.Recover(), IsOk());
  ASSERT_THAT(coordinator.ApplyTopology(Tp2Pp2Dp2("llama")), IsOk());
  EXPECT_THAT(coordinator.Register(Agent(0)),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("no space")));
  auto status = coordinator.GetStatus("llama");
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->registered_members(), 0);
}

TEST(CoordinatorStoreTest, AFailedWriteTakesTheStateBackToTheStoredOneAndWritesGoOn) {
  FailingStore store;
  store.fail_clusters = false;
  store.fail_members = false;
  FakeClock clock;
  Coordinator coordinator(&store, &clock);
  ASSERT_THAT(coordinator.Recover(), IsOk());
  ASSERT_THAT(coordinator.ApplyTopology(Tp2Pp2Dp2("llama")), IsOk());
  auto first = coordinator.Register(Agent(0));
  ASSERT_THAT(first, IsOk());

  store.fail_members = true;
  EXPECT_THAT(coordinator.Register(Agent(1)),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("no space")));
  auto status = coordinator.GetStatus("llama");
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->registered_members(), 1);
  // The member stored before keeps its session.
  v1::HeartbeatRequest heartbeat;
  heartbeat.mutable_member()->set_cluster("llama");
  heartbeat.mutable_member()->set_member_id(first->member_id());
  heartbeat.mutable_member()->set_session_token(first->session_token());
  EXPECT_THAT(coordinator.Heartbeat(heartbeat), IsOk());

  store.fail_members = false;
  for (int i = 1; i < 8; ++i) ASSERT_THAT(coordinator.Register(Agent(i)), IsOk()) << i;
  status = coordinator.GetStatus("llama");
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->registered_members(), 8);
  absl::StatusOr<std::vector<store::ClusterState>> stored = store.LoadClusters();
  ASSERT_THAT(stored, IsOk());
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0].members.size(), 8u);
  EXPECT_EQ((*stored)[0].record.assignment.size(), 8u);
}

}  // namespace
}  // namespace splitd::daemon

namespace splitd::daemon {
namespace {

// Leases on a fake clock: an agent that stops heartbeating is lost after its lease, its dp
// replica is dropped in a new epoch that is durable (a restarted coordinator serves it), and it
// comes back as a spare that scales dp up again.
TEST(CoordinatorElasticTest, ExpiredLeaseDropsTheReplicaDurablyAndAReturnScalesBackUp) {
  store::MemoryStateStore store;
  FakeClock clock;
  Coordinator coordinator(&store, &clock);
  ApplyLlamaWithLease(coordinator, 3000);
  std::vector<v1::MemberCredentials> members;
  for (int i = 0; i < 8; ++i) {
    auto registered = coordinator.Register(Agent(i));
    ASSERT_THAT(registered, IsOk());
    v1::MemberCredentials credentials;
    credentials.set_cluster("llama");
    credentials.set_member_id(registered->member_id());
    credentials.set_session_token(registered->session_token());
    members.push_back(credentials);
  }
  // Everyone but member 5 heartbeats past the lease.
  clock.Advance(absl::Seconds(2));
  HeartbeatAllBut(coordinator, members, 5);
  clock.Advance(absl::Seconds(1.5));
  HeartbeatAllBut(coordinator, members, 5);
  coordinator.Tick();
  auto status = coordinator.GetStatus("llama");
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->epoch(), 2);
  EXPECT_EQ(status->world_size(), 4);  // TP2 PP2 DP2 -> DP1
  EXPECT_THAT(status->epoch_reason(), HasSubstr("rank 5 (m-5) lost"));
  EXPECT_EQ(status->lost_members(), 1);
  EXPECT_NEAR(status->timings().detect_ms(), 3500, 1);

  // A restarted coordinator on the same store serves epoch 2 with the same ranks.
  Coordinator restarted(&store, &clock);
  ASSERT_THAT(restarted.Recover(), IsOk());
  auto recovered = restarted.GetStatus("llama");
  ASSERT_THAT(recovered, IsOk());
  EXPECT_EQ(recovered->epoch(), 2);
  ASSERT_EQ(recovered->members_size(), status->members_size());
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(recovered->members(i).member_id(), status->members(i).member_id());
  }
  auto cluster = restarted.GetCluster("llama");
  ASSERT_THAT(cluster, IsOk());
  EXPECT_EQ(cluster->plan_topology().dims(2).size(), 1);
  EXPECT_EQ(cluster->topology().dims(2).size(), 2);

  // Member 5 heartbeats again: with the member freed by the dropped replica, dp grows to 2.
  v1::HeartbeatRequest back;
  *back.mutable_member() = members[5];
  ASSERT_THAT(coordinator.Heartbeat(back), IsOk());
  status = coordinator.GetStatus("llama");
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->epoch(), 3);
  EXPECT_EQ(status->world_size(), 8);
  EXPECT_THAT(status->epoch_reason(), HasSubstr("dp 1 -> 2"));
}

}  // namespace
}  // namespace splitd::daemon

namespace splitd::daemon {
namespace {

// Credentials of Agent(0..7) by rank (Agent(i) holds rank i: node i / 4, local index i % 4).
std::vector<v1::MemberCredentials> RegisterWorld(Coordinator& coordinator) {
  std::vector<v1::MemberCredentials> by_rank(8);
  for (int i = 0; i < 8; ++i) {
    absl::StatusOr<v1::RegisterResponse> response = coordinator.Register(Agent(i));
    EXPECT_THAT(response, IsOk());
    if (!response.ok()) continue;
    by_rank[static_cast<size_t>(i)].set_cluster("llama");
    by_rank[static_cast<size_t>(i)].set_member_id(response->member_id());
    by_rank[static_cast<size_t>(i)].set_session_token(response->session_token());
  }
  return by_rank;
}

v1::ReportGroupStatusRequest Progress(const v1::MemberCredentials& member, int64_t rank,
                                      const std::string& fingerprint, v1::Phase phase,
                                      v1::ReportLayer layer, const std::string& detail = "") {
  v1::ReportGroupStatusRequest report;
  *report.mutable_member() = member;
  report.set_epoch(1);
  report.set_rank(rank);
  report.set_fingerprint(fingerprint);
  report.set_phase(phase);
  report.set_layer(layer);
  report.set_detail(detail);
  if (phase == v1::PHASE_READY && layer == v1::REPORT_LAYER_UNSPECIFIED) {
    for (const char* kind : {"tp", "pp", "dp"}) {
      v1::GroupReport* group = report.add_groups();
      group->set_kind(kind);
      group->set_backend("cpu:gloo");
      group->set_phase(v1::PHASE_READY);
      group->set_allreduce_value(2);
    }
  }
  return report;
}

// Every event of "llama" so far.
std::vector<v1::Event> Events(const EventLog& log) {
  std::vector<v1::Event> events;
  uint64_t after = 0;
  while (std::optional<v1::Event> event = log.Next(after, "llama")) {
    after = event->sequence();
    events.push_back(*event);
  }
  return events;
}

v1::Topology WorkloadReadiness() {
  v1::Topology topology = Tp2Pp2Dp2("llama");
  topology.set_readiness("workload");
  topology.mutable_elastic()->set_lease_timeout_ms(600000);
  return topology;
}

TEST(CoordinatorWorkloadTest, WorkloadReadinessIsReadyOnlyOnceEveryWorkloadReported) {
  store::MemoryStateStore store;
  FakeClock clock;
  Coordinator coordinator(&store, &clock);
  ASSERT_THAT(coordinator.Recover(), IsOk());
  auto applied = coordinator.ApplyTopology(WorkloadReadiness());
  ASSERT_THAT(applied, IsOk());
  const std::string fingerprint = applied->cluster.fingerprint();
  const std::vector<v1::MemberCredentials> members = RegisterWorld(coordinator);
  for (int64_t rank = 0; rank < 8; ++rank) {
    ASSERT_THAT(
        coordinator.ReportGroupStatus(Progress(members[rank], rank, fingerprint, v1::PHASE_READY,
                                               v1::REPORT_LAYER_UNSPECIFIED)),
        IsOk());
  }
  auto status = coordinator.GetStatus("llama");
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->state(), v1::PHASE_VALIDATING);
  EXPECT_EQ(status->readiness(), "workload");
  EXPECT_EQ(status->workload_state(), v1::PHASE_UNSPECIFIED);
  // Every workload is awaited, none of them blocked in a rendezvous wait.
  EXPECT_EQ(status->waiting_on_total(), 8);
  EXPECT_EQ(status->waiting_on(0).layer(), "workload");

  for (int64_t rank = 0; rank < 8; ++rank) {
    auto response = coordinator.ReportGroupStatus(
        Progress(members[rank], rank, fingerprint, v1::PHASE_READY, v1::REPORT_LAYER_WORKLOAD));
    ASSERT_THAT(response, IsOk());
    EXPECT_EQ(response->cluster_phase(), rank < 7 ? v1::PHASE_VALIDATING : v1::PHASE_READY);
  }
  status = coordinator.GetStatus("llama");
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->state(), v1::PHASE_READY);
  EXPECT_EQ(status->workload_state(), v1::PHASE_READY);
  EXPECT_EQ(status->waiting_on_size(), 0);
  const std::vector<v1::Event> events = Events(*coordinator.events());
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().kind(), v1::EVENT_KIND_PHASE_CHANGED);
  EXPECT_EQ(events.back().phase(), v1::PHASE_READY);
}

TEST(CoordinatorWorkloadTest, ARankPastItsDeadlineFailsTheEpochDurablyAndIsNamed) {
  store::MemoryStateStore store;
  FakeClock clock;
  Coordinator coordinator(&store, &clock);
  ASSERT_THAT(coordinator.Recover(), IsOk());
  v1::Topology topology = WorkloadReadiness();
  topology.mutable_deadlines()->set_workload_ms(30000);
  auto applied = coordinator.ApplyTopology(topology);
  ASSERT_THAT(applied, IsOk());
  const std::string fingerprint = applied->cluster.fingerprint();
  const std::vector<v1::MemberCredentials> members = RegisterWorld(coordinator);
  for (int64_t rank = 0; rank < 8; ++rank) {
    ASSERT_THAT(
        coordinator.ReportGroupStatus(Progress(members[rank], rank, fingerprint, v1::PHASE_READY,
                                               v1::REPORT_LAYER_UNSPECIFIED)),
        IsOk());
    ASSERT_THAT(
        coordinator.ReportGroupStatus(Progress(
            members[rank], rank, fingerprint, rank == 3 ? v1::PHASE_SPLITTING : v1::PHASE_READY,
            v1::REPORT_LAYER_WORKLOAD, rank == 3 ? "creating dp" : "")),
        IsOk());
  }
  clock.Advance(absl::Seconds(29));
  coordinator.Tick();
  auto status = coordinator.GetStatus("llama");
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->state(), v1::PHASE_VALIDATING);
  ASSERT_EQ(status->waiting_on_size(), 1);
  EXPECT_EQ(status->waiting_on(0).rank(), 3);
  EXPECT_EQ(status->waiting_on(0).detail(), "creating dp");
  EXPECT_DOUBLE_EQ(status->waiting_on(0).seconds(), 29);

  clock.Advance(absl::Seconds(2));
  coordinator.Tick();
  const std::string stalled =
      "rank 3 (pod pod-3, node node-0) stuck in workload SPLITTING (creating dp) for 31.0 s: "
      "deadline workload_ms 30000";
  status = coordinator.GetStatus("llama");
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->state(), v1::PHASE_FAILED);
  EXPECT_EQ(status->reason(), stalled);
  EXPECT_EQ(status->members(3).workload().phase(), v1::PHASE_FAILED);

  // STALLED names the rank, then the epoch's PHASE_CHANGED to FAILED follows.
  const std::vector<v1::Event> events = Events(*coordinator.events());
  ASSERT_GE(events.size(), 2u);
  const v1::Event& stall = events[events.size() - 2];
  EXPECT_EQ(stall.kind(), v1::EVENT_KIND_STALLED);
  EXPECT_EQ(stall.reason(), stalled);
  EXPECT_EQ(stall.rank(), 3);
  EXPECT_EQ(stall.member_id(), members[3].member_id());
  EXPECT_EQ(events.back().kind(), v1::EVENT_KIND_PHASE_CHANGED);
  EXPECT_EQ(events.back().phase(), v1::PHASE_FAILED);
  EXPECT_EQ(events.back().reason(), status->reason());
  coordinator.Tick();  // FAILED already: nothing more
  EXPECT_EQ(Events(*coordinator.events()).size(), events.size());

  // The failure is in the store like a rank's own report: a restarted daemon replays it.
  Coordinator restarted(&store, &clock);
  ASSERT_THAT(restarted.Recover(), IsOk());
  auto recovered = restarted.GetStatus("llama");
  ASSERT_THAT(recovered, IsOk());
  EXPECT_EQ(recovered->state(), v1::PHASE_FAILED);
  EXPECT_EQ(recovered->reason(), status->reason());
  EXPECT_EQ(recovered->members(3).workload().phase(), v1::PHASE_FAILED);
  EXPECT_EQ(recovered->members(3).workload().reason(), status->reason());
}

TEST(CoordinatorWorkloadTest, StatusNamesTheRankOthersWaitOnInTheRendezvous) {
  store::MemoryStateStore store;
  FakeClock clock;
  Coordinator coordinator(&store, &clock);
  ASSERT_THAT(coordinator.Recover(), IsOk());
  auto applied = coordinator.ApplyTopology(WorkloadReadiness());
  ASSERT_THAT(applied, IsOk());
  const std::vector<v1::MemberCredentials> members = RegisterWorld(coordinator);
  core::HangAttribution::WaitingKeys waiting;
  for (int64_t rank = 0; rank < 8; ++rank) {
    if (rank == 6) continue;
    ASSERT_THAT(coordinator.ReportGroupStatus(
                    Progress(members[rank], rank, applied->cluster.fingerprint(),
                             v1::PHASE_BOOTSTRAPPING, v1::REPORT_LAYER_UNSPECIFIED)),
                IsOk());
    waiting[members[rank].member_id()] = {"bootstrap/rank6"};
  }
  clock.Advance(absl::Seconds(12));
  auto status = coordinator.GetStatus("llama", waiting);
  ASSERT_THAT(status, IsOk());
  ASSERT_EQ(status->waiting_on_size(), 1);
  EXPECT_EQ(status->waiting_on_total(), 1);
  EXPECT_EQ(status->waiting_on(0).rank(), 6);
  EXPECT_EQ(status->waiting_on(0).layer(), "agent");
  EXPECT_EQ(status->waiting_on(0).phase(), v1::PHASE_PLANNED);
  EXPECT_DOUBLE_EQ(status->waiting_on(0).seconds(), 12);
  EXPECT_THAT(status->members(0).waiting_for_keys(), ElementsAre("bootstrap/rank6"));
}

TEST(CoordinatorWorkloadTest, ARestartedDaemonCountsDeadlinesAfresh) {
  store::MemoryStateStore store;
  FakeClock clock;
  v1::Topology topology = Tp2Pp2Dp2("llama");
  topology.mutable_elastic()->set_lease_timeout_ms(600000);
  topology.mutable_deadlines()->set_bootstrap_ms(30000);
  {
    Coordinator first(&store, &clock);
    ASSERT_THAT(first.Recover(), IsOk());
    ASSERT_THAT(first.ApplyTopology(topology), IsOk());
    RegisterWorld(first);
    clock.Advance(absl::Seconds(20));
    first.Tick();
  }
  clock.Advance(absl::Seconds(40));  // the daemon was down: nobody could bootstrap
  Coordinator restarted(&store, &clock);
  ASSERT_THAT(restarted.Recover(), IsOk());
  restarted.Tick();
  auto status = restarted.GetStatus("llama");
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->state(), v1::PHASE_PLANNED);
  clock.Advance(absl::Seconds(31));
  restarted.Tick();
  status = restarted.GetStatus("llama");
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->state(), v1::PHASE_FAILED);
  EXPECT_THAT(status->reason(), HasSubstr("stuck in agent PLANNED for 31.0 s"));
}

// A member whose plan stream closed is lost once the stream grace has passed, long before its
// lease; a heartbeat after the close (the process is alive) keeps it for the lease.
TEST(CoordinatorElasticTest, AClosedPlanStreamLosesTheMemberAfterTheGrace) {
  store::MemoryStateStore store;
  FakeClock clock;
  Coordinator coordinator(&store, &clock);
  ASSERT_THAT(coordinator.Recover(), IsOk());
  ASSERT_THAT(coordinator.ApplyTopology(Tp2Pp2Dp2("llama")), IsOk());  // lease 10 s, grace 1 s
  const std::vector<v1::MemberCredentials> members = RegisterWorld(coordinator);
  for (const v1::MemberCredentials& credentials : members)
    coordinator.PlanStreamOpened(credentials);
  clock.Advance(absl::Seconds(1));
  coordinator.PlanStreamClosed(members[5]);  // killed
  coordinator.PlanStreamClosed(members[6]);  // its stream was reset; it heartbeats
  v1::HeartbeatRequest heartbeat;
  *heartbeat.mutable_member() = members[6];
  ASSERT_THAT(coordinator.Heartbeat(heartbeat), IsOk());
  // The epoch once the clock moved by `advance` and the daemon ticked.
  const auto epoch_after = [&](absl::Duration advance) {
    clock.Advance(advance);
    coordinator.Tick();
    absl::StatusOr<v1::ClusterStatus> now = coordinator.GetStatus("llama");
    return now.ok() ? now->epoch() : -1;
  };
  EXPECT_EQ(epoch_after(absl::Milliseconds(900)), 1);
  EXPECT_EQ(epoch_after(absl::Milliseconds(200)), 2);
  auto status = coordinator.GetStatus("llama");
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->lost_members(), 1);
  EXPECT_THAT(status->epoch_reason(), HasSubstr("rank 5 (m-5) lost"));
  EXPECT_NEAR(status->timings().detect_ms(), 1100, 1);
}

TEST(CoordinatorElasticTest, ADecisionTakesLivenessAtItsOwnInstant) {
  store::MemoryStateStore store;
  FakeClock clock;
  Coordinator coordinator(&store, &clock);
  ApplyLlamaWithLease(coordinator, 3000);
  const std::vector<v1::MemberCredentials> members = RegisterWorld(coordinator);
  clock.Advance(absl::Seconds(2));
  HeartbeatAllBut(coordinator, members, 5);
  // Member 5's lease ran out, and no tick has looked yet. A spare registers: the decision it
  // prompts finds rank 5 missing and gives it to the spare, instead of waiting for a whole
  // replica of spares.
  clock.Advance(absl::Seconds(1.5));
  absl::StatusOr<v1::RegisterResponse> spare = coordinator.Register(Agent(8));
  ASSERT_THAT(spare, IsOk());
  absl::StatusOr<v1::ClusterStatus> status = coordinator.GetStatus("llama");
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->epoch(), 2);
  EXPECT_EQ(status->world_size(), 8);
  std::string rank5;
  for (const v1::MemberStatus& member : status->members()) {
    if (member.rank() == 5) rank5 = member.member_id();
  }
  EXPECT_EQ(rank5, spare->member_id());
}

}  // namespace
}  // namespace splitd::daemon
