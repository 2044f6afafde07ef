#ifndef SPLITD_DAEMON_STORE_STATE_STORE_CONFORMANCE_H_
#define SPLITD_DAEMON_STORE_STATE_STORE_CONFORMANCE_H_

// One conformance suite that every StateStore implementation runs:
//
//   INSTANTIATE_TEST_SUITE_P(Memory, StateStoreConformanceTest,
//                            ::testing::Values(StoreFactory([] { return ...; })));

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "daemon/store/records.h"
#include "daemon/store/state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace splitd::store {

using StoreFactory = std::function<std::unique_ptr<StateStore>()>;

class StateStoreConformanceTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  static ClusterRecord Record(const std::string& name, int64_t epoch) {
    ClusterRecord record;
    record.topology.set_cluster(name);
    auto* dim = record.topology.add_dims();
    dim->set_name("tp");
    dim->set_size(2 * epoch);
    record.epoch = epoch;
    record.create_time = absl::FromUnixSeconds(1000);
    record.update_time = absl::FromUnixSeconds(1000 + epoch);
    return record;
  }
};

inline StoredMember Member(const std::string& pod, int64_t index) {
  StoredMember member;
  member.identity.set_cluster("job");
  member.identity.set_pod(pod);
  member.identity.set_node("node-0");
  member.identity.set_host("10.0.0.1");
  member.identity.set_local_index(index);
  member.identity.set_incarnation("inc-" + pod);
  member.capabilities.add_backends("cpu:gloo");
  member.session_token_sha256 = "digest-" + pod;
  member.registered = absl::FromUnixSeconds(2000 + index);
  return member;
}

inline v1::ReportGroupStatusRequest Report(int64_t rank, v1::Phase phase) {
  v1::ReportGroupStatusRequest report;
  report.mutable_member()->set_member_id("m-" + std::to_string(rank));
  report.set_rank(rank);
  report.set_phase(phase);
  report.set_fingerprint("f");
  return report;
}

TEST_P(StateStoreConformanceTest, EmptyStoreLoadsNothing) {
  auto store = GetParam()();
  auto loaded = store->LoadClusters();
  ASSERT_THAT(loaded, testing::IsOk());
  EXPECT_TRUE(loaded->empty());
}

TEST_P(StateStoreConformanceTest, PutThenLoadReturnsEveryFieldSortedByName) {
  auto store = GetParam()();
  ASSERT_THAT(store->PutCluster(Record("zeta", 1)), testing::IsOk());
  ASSERT_THAT(store->PutCluster(Record("alpha", 3)), testing::IsOk());
  auto loaded = store->LoadClusters();
  ASSERT_THAT(loaded, testing::IsOk());
  ASSERT_EQ(loaded->size(), 2u);
  EXPECT_EQ((*loaded)[0].record.topology.cluster(), "alpha");
  EXPECT_EQ((*loaded)[0].record.epoch, 3);
  EXPECT_EQ((*loaded)[0].record.topology.dims(0).size(), 6);
  EXPECT_EQ((*loaded)[0].record.create_time, absl::FromUnixSeconds(1000));
  EXPECT_EQ((*loaded)[0].record.update_time, absl::FromUnixSeconds(1003));
  EXPECT_EQ((*loaded)[1].record.topology.cluster(), "zeta");
}

TEST_P(StateStoreConformanceTest, PutReplacesTheRecordOfTheSameCluster) {
  auto store = GetParam()();
  ASSERT_THAT(store->PutCluster(Record("job", 1)), testing::IsOk());
  ASSERT_THAT(store->PutCluster(Record("job", 2)), testing::IsOk());
  auto loaded = store->LoadClusters();
  ASSERT_THAT(loaded, testing::IsOk());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].record.epoch, 2);
  EXPECT_EQ((*loaded)[0].record.topology.dims(0).size(), 4);
}

TEST_P(StateStoreConformanceTest, DeleteRemovesOnlyThatCluster) {
  auto store = GetParam()();
  ASSERT_THAT(store->PutCluster(Record("a", 1)), testing::IsOk());
  ASSERT_THAT(store->PutCluster(Record("b", 1)), testing::IsOk());
  ASSERT_THAT(store->DeleteCluster("a"), testing::IsOk());
  auto loaded = store->LoadClusters();
  ASSERT_THAT(loaded, testing::IsOk());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].record.topology.cluster(), "b");
}

TEST_P(StateStoreConformanceTest, DeleteOfUnknownClusterIsNotFound) {
  auto store = GetParam()();
  EXPECT_THAT(store->DeleteCluster("ghost"),
              testing::StatusIs(absl::StatusCode::kNotFound, ::testing::HasSubstr("ghost")));
}

TEST_P(StateStoreConformanceTest, RecordWithoutClusterNameIsRefused) {
  auto store = GetParam()();
  EXPECT_THAT(
      store->PutCluster(Record("", 1)),
      testing::StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("cluster")));
}

TEST_P(StateStoreConformanceTest, MembersReportsAndKeysLoadInOrder) {
  auto store = GetParam()();
  ASSERT_THAT(store->PutCluster(Record("job", 1)), testing::IsOk());
  ASSERT_THAT(store->AddMember("job", Member("b", 1)), testing::IsOk());
  ASSERT_THAT(store->AddMember("job", Member("a", 0)), testing::IsOk());
  ASSERT_THAT(store->AddReport("job", 1, Report(1, v1::PHASE_BOOTSTRAPPING)), testing::IsOk());
  ASSERT_THAT(store->AddReport("job", 1, Report(1, v1::PHASE_READY)), testing::IsOk());
  ASSERT_THAT(store->PutRendezvousKey("job", 1, "world/0", std::string("\0\1", 2)),
              testing::IsOk());
  ASSERT_THAT(store->PutRendezvousKey("job", 1, "world/0", "again"), testing::IsOk());
  auto loaded = store->LoadClusters();
  ASSERT_THAT(loaded, testing::IsOk());
  ASSERT_EQ(loaded->size(), 1u);
  const ClusterState& state = (*loaded)[0];
  ASSERT_EQ(state.members.size(), 2u);
  EXPECT_EQ(state.members[0].identity.pod(), "b");
  EXPECT_EQ(state.members[0].session_token_sha256, "digest-b");
  EXPECT_EQ(state.members[0].registered, absl::FromUnixSeconds(2001));
  EXPECT_EQ(state.members[1].identity.incarnation(), "inc-a");
  EXPECT_EQ(state.members[1].capabilities.backends(0), "cpu:gloo");
  ASSERT_EQ(state.reports.size(), 2u);
  EXPECT_EQ(state.reports[1].phase(), v1::PHASE_READY);
  EXPECT_EQ(state.rendezvous.at("world/0"), "again");
}

TEST_P(StateStoreConformanceTest, DeletedKeyIsGoneAndTheOthersStay) {
  auto store = GetParam()();
  ASSERT_THAT(store->PutCluster(Record("job", 1)), testing::IsOk());
  ASSERT_THAT(store->PutRendezvousKey("job", 1, "a", "1"), testing::IsOk());
  ASSERT_THAT(store->PutRendezvousKey("job", 1, "b", "2"), testing::IsOk());
  ASSERT_THAT(store->DeleteRendezvousKey("job", 1, "a"), testing::IsOk());
  // Removing what is not there is no error, and a removed key can be set again.
  ASSERT_THAT(store->DeleteRendezvousKey("job", 1, "never"), testing::IsOk());
  ASSERT_THAT(store->PutRendezvousKey("job", 1, "c", "3"), testing::IsOk());
  ASSERT_THAT(store->DeleteRendezvousKey("job", 1, "c"), testing::IsOk());
  ASSERT_THAT(store->PutRendezvousKey("job", 1, "c", "again"), testing::IsOk());
  auto loaded = store->LoadClusters();
  ASSERT_THAT(loaded, testing::IsOk());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].rendezvous,
            (std::map<std::string, std::string>{{"b", "2"}, {"c", "again"}}));
}

TEST_P(StateStoreConformanceTest, DeleteKeyChecksClusterAndEpochLikePut) {
  auto store = GetParam()();
  EXPECT_THAT(store->DeleteRendezvousKey("ghost", 1, "k"),
              testing::StatusIs(absl::StatusCode::kNotFound, ::testing::HasSubstr("ghost")));
  ASSERT_THAT(store->PutCluster(Record("job", 2)), testing::IsOk());
  EXPECT_THAT(store->DeleteRendezvousKey("job", 1, "k"),
              testing::StatusIs(absl::StatusCode::kFailedPrecondition,
                                ::testing::HasSubstr("epoch 2, not 1")));
}

TEST_P(StateStoreConformanceTest, NewEpochKeepsMembersAndDropsReportsAndKeys) {
  auto store = GetParam()();
  ASSERT_THAT(store->PutCluster(Record("job", 1)), testing::IsOk());
  ASSERT_THAT(store->AddMember("job", Member("a", 0)), testing::IsOk());
  ASSERT_THAT(store->AddReport("job", 1, Report(0, v1::PHASE_READY)), testing::IsOk());
  ASSERT_THAT(store->PutRendezvousKey("job", 1, "k", "v"), testing::IsOk());
  ASSERT_THAT(store->PutCluster(Record("job", 2)), testing::IsOk());
  EXPECT_THAT(
      store->AddReport("job", 1, Report(0, v1::PHASE_READY)),
      testing::StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::HasSubstr("epoch 2")));
  auto loaded = store->LoadClusters();
  ASSERT_THAT(loaded, testing::IsOk());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].members.size(), 1u);
  EXPECT_TRUE((*loaded)[0].reports.empty());
  EXPECT_TRUE((*loaded)[0].rendezvous.empty());
}

TEST_P(StateStoreConformanceTest, WritesForUnknownClustersAreNotFound) {
  auto store = GetParam()();
  EXPECT_THAT(store->AddMember("ghost", Member("a", 0)),
              testing::StatusIs(absl::StatusCode::kNotFound, ::testing::HasSubstr("ghost")));
  EXPECT_THAT(store->AddReport("ghost", 1, Report(0, v1::PHASE_READY)),
              testing::StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store->PutRendezvousKey("ghost", 1, "k", "v"),
              testing::StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(StateStoreConformanceTest, DeleteDropsMembersToo) {
  auto store = GetParam()();
  ASSERT_THAT(store->PutCluster(Record("job", 1)), testing::IsOk());
  ASSERT_THAT(store->AddMember("job", Member("a", 0)), testing::IsOk());
  ASSERT_THAT(store->DeleteCluster("job"), testing::IsOk());
  ASSERT_THAT(store->PutCluster(Record("job", 1)), testing::IsOk());
  auto loaded = store->LoadClusters();
  ASSERT_THAT(loaded, testing::IsOk());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_TRUE((*loaded)[0].members.empty());
}

// A change of `records`, for Commit.
inline Change ChangeOf(std::vector<internal::LogRecord> records) {
  Change change;
  change.records = std::move(records);
  return change;
}

TEST_P(StateStoreConformanceTest, CommitOfSeveralChangesAppliesThemAllInOrder) {
  auto store = GetParam()();
  std::vector<Change> changes;
  changes.push_back(ChangeOf({PutClusterRecord(Record("job", 1))}));
  changes.push_back(ChangeOf({AddMemberRecord("job", Member("b", 1))}));
  changes.push_back(ChangeOf({AddMemberRecord("job", Member("a", 0)),
                              AddReportRecord("job", 1, Report(0, v1::PHASE_READY))}));
  changes.push_back(ChangeOf({PutKeyRecord("job", 1, "k", "v")}));
  changes.push_back(ChangeOf({PutKeyRecord("job", 1, "k", "w"), DeleteKeyRecord("job", 1, "k")}));
  ASSERT_THAT(store->Commit(absl::MakeSpan(changes)), testing::IsOk());
  for (const Change& change : changes) EXPECT_THAT(change.status, testing::IsOk());
  auto loaded = store->LoadClusters();
  ASSERT_THAT(loaded, testing::IsOk());
  ASSERT_EQ(loaded->size(), 1u);
  const ClusterState& state = (*loaded)[0];
  ASSERT_EQ(state.members.size(), 2u);
  EXPECT_EQ(state.members[0].identity.pod(), "b");
  EXPECT_EQ(state.members[1].identity.pod(), "a");
  ASSERT_EQ(state.reports.size(), 1u);
  EXPECT_EQ(state.reports[0].phase(), v1::PHASE_READY);
  EXPECT_TRUE(state.rendezvous.empty());
}

TEST_P(StateStoreConformanceTest, ChangeWithARecordThatDoesNotApplyIsRefusedAlone) {
  auto store = GetParam()();
  ASSERT_THAT(store->PutCluster(Record("job", 1)), testing::IsOk());
  std::vector<Change> changes;
  changes.push_back(ChangeOf({AddMemberRecord("job", Member("before", 0))}));
  // Its first record applies; its second names an unknown cluster.
  changes.push_back(ChangeOf({AddMemberRecord("job", Member("refused", 1)),
                              PutKeyRecord("job", 1, "refused", "v"),
                              AddMemberRecord("ghost", Member("ghost", 2))}));
  changes.push_back(ChangeOf({AddMemberRecord("job", Member("after", 3))}));
  ASSERT_THAT(store->Commit(absl::MakeSpan(changes)), testing::IsOk());
  EXPECT_THAT(changes[0].status, testing::IsOk());
  EXPECT_THAT(changes[1].status,
              testing::StatusIs(absl::StatusCode::kNotFound, ::testing::HasSubstr("ghost")));
  EXPECT_THAT(changes[2].status, testing::IsOk());
  auto loaded = store->LoadClusters();
  ASSERT_THAT(loaded, testing::IsOk());
  ASSERT_EQ(loaded->size(), 1u);
  const ClusterState& state = (*loaded)[0];
  ASSERT_EQ(state.members.size(), 2u);
  EXPECT_EQ(state.members[0].identity.pod(), "before");
  EXPECT_EQ(state.members[1].identity.pod(), "after");
  EXPECT_TRUE(state.rendezvous.empty());
}

TEST_P(StateStoreConformanceTest, ChangeIsCheckedAgainstTheChangesBeforeItInTheSameCommit) {
  auto store = GetParam()();
  ASSERT_THAT(store->PutCluster(Record("job", 1)), testing::IsOk());
  std::vector<Change> changes;
  changes.push_back(ChangeOf({PutClusterRecord(Record("job", 2))}));
  changes.push_back(ChangeOf({AddReportRecord("job", 1, Report(0, v1::PHASE_READY))}));
  changes.push_back(ChangeOf({AddReportRecord("job", 2, Report(1, v1::PHASE_READY))}));
  ASSERT_THAT(store->Commit(absl::MakeSpan(changes)), testing::IsOk());
  EXPECT_THAT(changes[0].status, testing::IsOk());
  EXPECT_THAT(changes[1].status, testing::StatusIs(absl::StatusCode::kFailedPrecondition,
                                                   ::testing::HasSubstr("epoch 2, not 1")));
  EXPECT_THAT(changes[2].status, testing::IsOk());
  auto loaded = store->LoadClusters();
  ASSERT_THAT(loaded, testing::IsOk());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].record.epoch, 2);
  ASSERT_EQ((*loaded)[0].reports.size(), 1u);
  EXPECT_EQ((*loaded)[0].reports[0].rank(), 1);
}

TEST_P(StateStoreConformanceTest, CommitOfNoChangesIsOkAndChangesNothing) {
  auto store = GetParam()();
  ASSERT_THAT(store->PutCluster(Record("job", 1)), testing::IsOk());
  EXPECT_THAT(store->Commit(absl::Span<Change>()), testing::IsOk());
  auto loaded = store->LoadClusters();
  ASSERT_THAT(loaded, testing::IsOk());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].record.epoch, 1);
}

TEST_P(StateStoreConformanceTest, CommitWhoseEveryChangeIsRefusedIsOkAndChangesNothing) {
  auto store = GetParam()();
  std::vector<Change> changes;
  changes.push_back(ChangeOf({AddMemberRecord("ghost", Member("a", 0))}));
  changes.push_back(ChangeOf({DeleteClusterRecord("ghost")}));
  ASSERT_THAT(store->Commit(absl::MakeSpan(changes)), testing::IsOk());
  EXPECT_THAT(changes[0].status, testing::StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(changes[1].status, testing::StatusIs(absl::StatusCode::kNotFound));
  auto loaded = store->LoadClusters();
  ASSERT_THAT(loaded, testing::IsOk());
  EXPECT_TRUE(loaded->empty());
}

}  // namespace splitd::store

#endif  // SPLITD_DAEMON_STORE_STATE_STORE_CONFORMANCE_H_
