#include "daemon/store/store_state.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "daemon/store/records.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace splitd::store {
namespace {

using ::splitd::testing::IsOk;

ClusterRecord Cluster(const std::string& name, int64_t epoch) {
  ClusterRecord record;
  record.topology.set_cluster(name);
  auto* dim = record.topology.add_dims();
  dim->set_name("tp");
  dim->set_size(2 * epoch);
  record.epoch = epoch;
  record.create_time = absl::FromUnixSeconds(100);
  record.update_time = absl::FromUnixSeconds(100 + epoch);
  record.assignment = {"m-0", "m-1"};
  record.reason = "epoch " + std::to_string(epoch);
  return record;
}

StoredMember Member(const std::string& pod) {
  StoredMember member;
  member.identity.set_cluster("job");
  member.identity.set_pod(pod);
  member.session_token_sha256 = "digest-" + pod;
  member.registered = absl::FromUnixSeconds(200);
  return member;
}

v1::ReportGroupStatusRequest Report(int64_t rank) {
  v1::ReportGroupStatusRequest report;
  report.set_rank(rank);
  report.set_phase(v1::PHASE_READY);
  return report;
}

// Everything the state holds, as text: its records in full.
std::string Dump(const StoreState& state) {
  std::string out;
  for (const internal::LogRecord& record : state.Records()) out += record.DebugString();
  return out;
}

void ApplyChecked(StoreState& state, const internal::LogRecord& record, UndoLog* undo = nullptr) {
  ASSERT_THAT(state.Check(record), IsOk()) << record.ShortDebugString();
  state.Apply(record, undo);
}

// Two clusters; "job" at epoch 1 with two members, two reports and two keys.
StoreState Populated() {
  StoreState state;
  for (const internal::LogRecord& record : {
           PutClusterRecord(Cluster("job", 1)),
           AddMemberRecord("job", Member("b")),
           AddMemberRecord("job", Member("a")),
           AddReportRecord("job", 1, Report(0)),
           AddReportRecord("job", 1, Report(1)),
           PutKeyRecord("job", 1, "k1", "v1"),
           PutKeyRecord("job", 1, "k2", "v2"),
           PutClusterRecord(Cluster("other", 3)),
           AddMemberRecord("other", Member("x")),
       }) {
    ApplyChecked(state, record);
  }
  return state;
}

struct RevertCase {
  std::string name;
  std::vector<internal::LogRecord> records;
};

std::vector<RevertCase> RevertCases() {
  ClusterRecord updated = Cluster("job", 1);
  updated.assignment = {"m-1", "m-0"};
  updated.update_time = absl::FromUnixSeconds(999);
  return {
      {"put_cluster of the same epoch", {PutClusterRecord(updated)}},
      {"put_cluster of a new epoch", {PutClusterRecord(Cluster("job", 2))}},
      {"put_cluster of a new cluster", {PutClusterRecord(Cluster("new", 1))}},
      {"delete_cluster", {DeleteClusterRecord("job")}},
      {"add_member", {AddMemberRecord("job", Member("c"))}},
      {"add_report", {AddReportRecord("job", 1, Report(2))}},
      {"put_key of a new key", {PutKeyRecord("job", 1, "k3", "v3")}},
      {"put_key over a key", {PutKeyRecord("job", 1, "k1", "changed")}},
      {"delete_key of a key", {DeleteKeyRecord("job", 1, "k2")}},
      {"delete_key of a missing key", {DeleteKeyRecord("job", 1, "never")}},
      {"a new epoch and its reports and keys",
       {PutClusterRecord(Cluster("job", 2)), AddReportRecord("job", 2, Report(0)),
        PutKeyRecord("job", 2, "k1", "epoch 2"), AddMemberRecord("job", Member("c")),
        DeleteKeyRecord("job", 2, "k1")}},
      {"a cluster deleted and created again",
       {DeleteClusterRecord("other"), PutClusterRecord(Cluster("other", 1)),
        AddMemberRecord("other", Member("y")), PutKeyRecord("other", 1, "k", "v")}},
  };
}

TEST(StoreStateTest, RevertRestoresExactlyTheStateBeforeEachKindOfRecord) {
  for (const RevertCase& test : RevertCases()) {
    SCOPED_TRACE(test.name);
    StoreState state = Populated();
    const std::string before = Dump(state);
    // The same records applied without an undo log: what Apply with one must also reach.
    StoreState expected = Populated();
    for (const internal::LogRecord& record : test.records) ApplyChecked(expected, record);

    UndoLog undo;
    for (const internal::LogRecord& record : test.records) ApplyChecked(state, record, &undo);
    EXPECT_EQ(undo.size(), test.records.size());
    EXPECT_EQ(Dump(state), Dump(expected));
    if (test.name != "delete_key of a missing key") {
      EXPECT_NE(Dump(state), before);
    }

    state.Revert(&undo);
    EXPECT_TRUE(undo.empty());
    EXPECT_EQ(Dump(state), before);
  }
}

TEST(StoreStateTest, RevertOfANewEpochBringsBackItsReportsAndKeys) {
  StoreState state = Populated();
  UndoLog undo;
  ApplyChecked(state, PutClusterRecord(Cluster("job", 2)), &undo);
  std::vector<ClusterState> clusters = state.Clusters();
  ASSERT_EQ(clusters.size(), 2u);
  EXPECT_TRUE(clusters[0].reports.empty());
  EXPECT_TRUE(clusters[0].rendezvous.empty());
  EXPECT_EQ(clusters[0].members.size(), 2u);

  state.Revert(&undo);
  clusters = state.Clusters();
  ASSERT_EQ(clusters.size(), 2u);
  EXPECT_EQ(clusters[0].record.epoch, 1);
  EXPECT_EQ(clusters[0].record.topology.dims(0).size(), 2);
  ASSERT_EQ(clusters[0].reports.size(), 2u);
  EXPECT_EQ(clusters[0].reports[1].rank(), 1);
  EXPECT_EQ(clusters[0].rendezvous,
            (std::map<std::string, std::string>{{"k1", "v1"}, {"k2", "v2"}}));
  // The epoch is 1 again: records of epoch 1 apply, and records of epoch 2 do not.
  EXPECT_THAT(state.Check(AddReportRecord("job", 1, Report(3))), IsOk());
  EXPECT_THAT(state.Check(AddReportRecord("job", 2, Report(3))),
              splitd::testing::StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(StoreStateTest, RevertOfADeleteBringsBackTheWholeCluster) {
  StoreState state = Populated();
  UndoLog undo;
  ApplyChecked(state, DeleteClusterRecord("job"), &undo);
  ASSERT_EQ(state.Clusters().size(), 1u);
  state.Revert(&undo);
  const std::vector<ClusterState> clusters = state.Clusters();
  ASSERT_EQ(clusters.size(), 2u);
  EXPECT_EQ(clusters[0].record.topology.cluster(), "job");
  ASSERT_EQ(clusters[0].members.size(), 2u);
  EXPECT_EQ(clusters[0].members[0].identity.pod(), "b");
  EXPECT_EQ(clusters[0].members[1].session_token_sha256, "digest-a");
  EXPECT_EQ(clusters[0].reports.size(), 2u);
  EXPECT_EQ(clusters[0].rendezvous.size(), 2u);
}

TEST(StoreStateTest, UndoLogsRevertedNewestFirstRestoreTheStateBeforeTheOldest) {
  StoreState state = Populated();
  const std::string before = Dump(state);
  UndoLog first;
  UndoLog second;
  ApplyChecked(state, PutClusterRecord(Cluster("job", 2)), &first);
  ApplyChecked(state, AddReportRecord("job", 2, Report(0)), &second);
  ApplyChecked(state, DeleteClusterRecord("job"), &second);
  state.Revert(&second);
  state.Revert(&first);
  EXPECT_EQ(Dump(state), before);
}

}  // namespace
}  // namespace splitd::store
