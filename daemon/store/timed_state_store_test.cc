#include "daemon/store/timed_state_store.h"

#include <memory>
#include <string>

#include "common/metrics.h"
#include "common/status_matchers.h"
#include "daemon/store/memory_state_store.h"
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

// Refuses every write, as a full disk would.
class FullStore : public MemoryStateStore {
 public:
  absl::Status AddMember(const std::string&, const StoredMember&) override {
    return absl::ResourceExhaustedError("no space left on device");
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

}  // namespace
}  // namespace splitd::store
