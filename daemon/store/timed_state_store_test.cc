#include "daemon/store/timed_state_store.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/metrics.h"
#include "common/status_matchers.h"
#include "daemon/store/memory_state_store.h"
#include "daemon/store/records.h"
#include "daemon/store/state_store_conformance.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace splitd::store {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::HasSubstr;

// A registry that lives exactly as long as the store measuring into it (bases are built in
// order, so the registry exists before the store registers its metrics).
struct RegistryHolder {
  metrics::Registry registry;
};

class TimedMemoryStore : private RegistryHolder, public TimedStateStore {
 public:
  explicit TimedMemoryStore(
      std::unique_ptr<StateStore> store = std::make_unique<MemoryStateStore>())
      : TimedStateStore(std::move(store), &registry) {}
  std::string Render() const { return registry.Render(); }
};

INSTANTIATE_TEST_SUITE_P(Timed, StateStoreConformanceTest, ::testing::Values(StoreFactory([] {
                           return std::make_unique<TimedMemoryStore>();
                         })));

// Refuses every commit that adds a member, as a full disk would.
class FullStore : public MemoryStateStore {
 protected:
  absl::Status Persist(const std::vector<const internal::LogRecord*>& records) override {
    for (const internal::LogRecord* record : records) {
      if (record->has_add_member()) return absl::ResourceExhaustedError("no space left on device");
    }
    return absl::OkStatus();
  }
};

ClusterRecord Record(const std::string& name) {
  ClusterRecord record;
  record.topology.set_cluster(name);
  record.epoch = 1;
  return record;
}

TEST(TimedStateStoreTest, TimesEachWriteByOperation) {
  TimedMemoryStore store;
  ASSERT_THAT(store.PutCluster(Record("a")), IsOk());
  ASSERT_THAT(store.PutCluster(Record("b")), IsOk());
  ASSERT_THAT(store.AddMember("a", Member("pod-0", 0)), IsOk());
  ASSERT_THAT(store.PutRendezvousKey("a", 1, "k", "v"), IsOk());
  ASSERT_THAT(store.DeleteRendezvousKey("a", 1, "k"), IsOk());
  ASSERT_THAT(store.DeleteCluster("b"), IsOk());
  ASSERT_THAT(store.LoadClusters(), IsOk());

  const std::string text = store.Render();
  EXPECT_THAT(text, HasSubstr("splitd_store_write_seconds_count{operation=\"put_cluster\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("splitd_store_write_seconds_count{operation=\"add_member\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_store_write_seconds_count{operation=\"add_report\"} 0\n"));
  EXPECT_THAT(text,
              HasSubstr("splitd_store_write_seconds_count{operation=\"put_rendezvous_key\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("splitd_store_write_seconds_count{operation=\"delete_cluster\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_store_write_seconds_count{"
                              "operation=\"delete_rendezvous_key\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_store_write_failures_total{operation=\"put_cluster\"} 0\n"));
}

TEST(TimedStateStoreTest, RefusedWritesAreCountedAndTheStatusPassesThrough) {
  TimedMemoryStore store(std::make_unique<FullStore>());
  ASSERT_THAT(store.PutCluster(Record("a")), IsOk());
  EXPECT_THAT(store.AddMember("a", Member("pod-0", 0)),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("no space")));
  EXPECT_THAT(store.DeleteCluster("missing"), StatusIs(absl::StatusCode::kNotFound));

  const std::string text = store.Render();
  EXPECT_THAT(text, HasSubstr("splitd_store_write_failures_total{operation=\"add_member\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("splitd_store_write_failures_total{operation=\"delete_cluster\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_store_write_seconds_count{operation=\"add_member\"} 1\n"));
}

TEST(TimedStateStoreTest, CountsTheChangesOfEachCommitAndTimesEachChange) {
  TimedMemoryStore store;
  ASSERT_THAT(store.PutCluster(Record("a")), IsOk());
  std::vector<Change> changes;
  for (int i = 0; i < 3; ++i) changes.push_back(ChangeOf({AddMemberRecord("a", Member("p", i))}));
  changes.push_back(ChangeOf({DeleteKeyRecord("a", 1, "k")}));
  changes.push_back(ChangeOf({AddMemberRecord("ghost", Member("q", 0))}));
  ASSERT_THAT(store.Commit(absl::MakeSpan(changes)), IsOk());
  ASSERT_THAT(store.Commit(absl::Span<Change>()), IsOk());

  const std::string text = store.Render();
  // One commit of one change (PutCluster) and one of five; the empty one is not counted.
  EXPECT_THAT(text, HasSubstr("splitd_store_commit_changes_count 2\n"));
  EXPECT_THAT(text, HasSubstr("splitd_store_commit_changes_sum 6\n"));
  EXPECT_THAT(text, HasSubstr("splitd_store_commit_changes_bucket{le=\"1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_store_commit_changes_bucket{le=\"4\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_store_commit_changes_bucket{le=\"8\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("splitd_store_commit_changes_bucket{le=\"4096\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("splitd_store_write_seconds_count{operation=\"add_member\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("splitd_store_write_seconds_count{"
                              "operation=\"delete_rendezvous_key\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_store_write_failures_total{operation=\"add_member\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_store_write_failures_total{"
                              "operation=\"delete_rendezvous_key\"} 0\n"));
}

TEST(TimedStateStoreTest, FailedCommitCountsAFailureForEachAcceptedChange) {
  TimedMemoryStore store(std::make_unique<FullStore>());
  ASSERT_THAT(store.PutCluster(Record("a")), IsOk());
  std::vector<Change> changes;
  changes.push_back(ChangeOf({PutKeyRecord("a", 1, "k", "v")}));
  changes.push_back(ChangeOf({AddMemberRecord("a", Member("p", 0))}));
  EXPECT_THAT(store.Commit(absl::MakeSpan(changes)),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("no space")));
  EXPECT_THAT(changes[0].status, StatusIs(absl::StatusCode::kResourceExhausted));

  const std::string text = store.Render();
  EXPECT_THAT(text, HasSubstr("splitd_store_write_failures_total{"
                              "operation=\"put_rendezvous_key\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_store_write_failures_total{operation=\"add_member\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_store_commit_changes_count 2\n"));
}

}  // namespace
}  // namespace splitd::store
