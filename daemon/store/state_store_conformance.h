#ifndef SPLITD_DAEMON_STORE_STATE_STORE_CONFORMANCE_H_
#define SPLITD_DAEMON_STORE_STATE_STORE_CONFORMANCE_H_

// One conformance suite that every StateStore implementation runs:
//
//   INSTANTIATE_TEST_SUITE_P(Memory, StateStoreConformanceTest,
//                            ::testing::Values(StoreFactory([] { return ...; })));

#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "common/status_matchers.h"
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
  EXPECT_EQ((*loaded)[0].topology.cluster(), "alpha");
  EXPECT_EQ((*loaded)[0].epoch, 3);
  EXPECT_EQ((*loaded)[0].topology.dims(0).size(), 6);
  EXPECT_EQ((*loaded)[0].create_time, absl::FromUnixSeconds(1000));
  EXPECT_EQ((*loaded)[0].update_time, absl::FromUnixSeconds(1003));
  EXPECT_EQ((*loaded)[1].topology.cluster(), "zeta");
}

TEST_P(StateStoreConformanceTest, PutReplacesTheRecordOfTheSameCluster) {
  auto store = GetParam()();
  ASSERT_THAT(store->PutCluster(Record("job", 1)), testing::IsOk());
  ASSERT_THAT(store->PutCluster(Record("job", 2)), testing::IsOk());
  auto loaded = store->LoadClusters();
  ASSERT_THAT(loaded, testing::IsOk());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].epoch, 2);
  EXPECT_EQ((*loaded)[0].topology.dims(0).size(), 4);
}

TEST_P(StateStoreConformanceTest, DeleteRemovesOnlyThatCluster) {
  auto store = GetParam()();
  ASSERT_THAT(store->PutCluster(Record("a", 1)), testing::IsOk());
  ASSERT_THAT(store->PutCluster(Record("b", 1)), testing::IsOk());
  ASSERT_THAT(store->DeleteCluster("a"), testing::IsOk());
  auto loaded = store->LoadClusters();
  ASSERT_THAT(loaded, testing::IsOk());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].topology.cluster(), "b");
}

TEST_P(StateStoreConformanceTest, DeleteOfUnknownClusterIsNotFound) {
  auto store = GetParam()();
  EXPECT_THAT(store->DeleteCluster("ghost"),
              testing::StatusIs(absl::StatusCode::kNotFound, ::testing::HasSubstr("ghost")));
}

TEST_P(StateStoreConformanceTest, RecordWithoutClusterNameIsRefused) {
  auto store = GetParam()();
  EXPECT_THAT(store->PutCluster(Record("", 1)),
              testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                ::testing::HasSubstr("cluster")));
}

}  // namespace splitd::store

#endif  // SPLITD_DAEMON_STORE_STATE_STORE_CONFORMANCE_H_
