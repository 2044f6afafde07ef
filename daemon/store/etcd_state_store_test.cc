// EtcdStateStore against a real etcd (Debian's etcd-server): the StateStore conformance suite,
// replay of entries, pieces and snapshots, fencing, writes whose outcome is unknown, and the etcd
// leader killed while commits run.

#include "daemon/store/etcd_state_store.h"

#include <signal.h>

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "daemon/etcd/etcd_client.h"
#include "daemon/store/records.h"
#include "daemon/store/state_store_conformance.h"
#include "gtest/gtest.h"
#include "tests/testing/etcd_cluster.h"

namespace splitd::store {
namespace {

using splitd::testing::IsOk;
using splitd::testing::StatusIs;

testing::EtcdCluster& SharedEtcd() {
  static testing::EtcdCluster* cluster = [] {
    auto started = testing::EtcdCluster::Start(1);
    if (!started.ok()) {
      ADD_FAILURE() << started.status();
      std::abort();
    }
    return started->release();
  }();
  return *cluster;
}

std::unique_ptr<etcd::EtcdClient> ClientOf(const testing::EtcdCluster& cluster,
                                           absl::Duration call_timeout = absl::Seconds(5)) {
  etcd::EtcdOptions options;
  options.endpoints = cluster.endpoints();
  options.call_timeout = call_timeout;
  auto client = etcd::EtcdClient::Create(options);
  EXPECT_THAT(client, IsOk());
  return *std::move(client);
}

// Puts `key` (a stand-in for an elected leader key) and returns its create revision.
int64_t PutLeaderKey(etcd::EtcdClient& client, const std::string& key) {
  etcdserverpb::TxnRequest txn;
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value("replica");
  auto written = client.Txn(txn);
  EXPECT_THAT(written, IsOk());
  auto read = client.Range([&] {
    etcdserverpb::RangeRequest request;
    request.set_key(key);
    return request;
  }());
  EXPECT_THAT(read, IsOk());
  return read->kvs(0).create_revision();
}

std::string NewPrefix() {
  static std::atomic<int> next{0};
  return absl::StrCat("/test-", getpid(), "-", next++, "/");
}

struct Opened {
  std::unique_ptr<etcd::EtcdClient> client;
  std::unique_ptr<EtcdStateStore> store;
};

// A store over its own client (the store keeps a pointer to it).
class OwningStore : public StateStore {
 public:
  explicit OwningStore(Opened opened) : opened_(std::move(opened)) {}
  absl::Status Commit(absl::Span<Change> changes) override {
    return opened_.store->Commit(changes);
  }
  absl::StatusOr<std::vector<ClusterState>> LoadClusters() const override {
    return opened_.store->LoadClusters();
  }

 private:
  Opened opened_;
};

EtcdStoreOptions OptionsFor(etcd::EtcdClient& client, const std::string& prefix) {
  EtcdStoreOptions options;
  options.prefix = prefix;
  options.leader_key = prefix + "leader";
  options.term = PutLeaderKey(client, options.leader_key);
  return options;
}

INSTANTIATE_TEST_SUITE_P(Etcd, StateStoreConformanceTest,
                         ::testing::Values(StoreFactory([]() -> std::unique_ptr<StateStore> {
                           Opened opened;
                           opened.client = ClientOf(SharedEtcd());
                           auto store = EtcdStateStore::Open(
                               opened.client.get(), OptionsFor(*opened.client, NewPrefix()));
                           EXPECT_THAT(store, IsOk());
                           opened.store = *std::move(store);
                           return std::make_unique<OwningStore>(std::move(opened));
                         })));

ClusterRecord Cluster(const std::string& name, int64_t epoch) {
  ClusterRecord record;
  record.topology.set_cluster(name);
  auto* dim = record.topology.add_dims();
  dim->set_name("dp");
  dim->set_size(4);
  record.epoch = epoch;
  record.create_time = absl::FromUnixSeconds(1000);
  record.update_time = absl::FromUnixSeconds(1000 + epoch);
  return record;
}

std::string Dump(const StateStore& store) {
  auto clusters = store.LoadClusters();
  EXPECT_THAT(clusters, IsOk());
  std::string out;
  for (const ClusterState& state : *clusters) {
    absl::StrAppend(&out, state.record.topology.ShortDebugString(), " epoch ", state.record.epoch,
                    "\n");
    for (const StoredMember& member : state.members) {
      absl::StrAppend(&out, " member ", member.identity.ShortDebugString(), "\n");
    }
    for (const auto& report : state.reports) absl::StrAppend(&out, " report ", report.rank(), "\n");
    for (const auto& [key, value] : state.rendezvous) absl::StrAppend(&out, " key ", key, "\n");
  }
  return out;
}

void Populate(StateStore& store, int members) {
  ASSERT_THAT(store.PutCluster(Cluster("job", 1)), IsOk());
  for (int i = 0; i < members; ++i) {
    ASSERT_THAT(store.AddMember("job", Member(absl::StrCat("pod-", i), i)), IsOk());
  }
  ASSERT_THAT(store.PutRendezvousKey("job", 1, "world/0", std::string("\0\1\2", 3)), IsOk());
  ASSERT_THAT(store.PutCluster(Cluster("other", 1)), IsOk());
  ASSERT_THAT(store.PutRendezvousKey("other", 1, "stale", "v"), IsOk());
  ASSERT_THAT(store.PutCluster(Cluster("other", 2)), IsOk());
  ASSERT_THAT(store.AddReport("job", 1, Report(0, v1::PHASE_READY)), IsOk());
}

TEST(EtcdStateStoreTest, ReopenReplaysEntriesPiecesAndSnapshots) {
  auto client = ClientOf(SharedEtcd());
  EtcdStoreOptions options = OptionsFor(*client, NewPrefix());
  options.piece_bytes = 200;  // most entries become pieces
  options.compact_after_bytes = 1 << 30;
  auto store = EtcdStateStore::Open(client.get(), options);
  ASSERT_THAT(store, IsOk());
  Populate(**store, 6);
  ASSERT_THAT((*store)->Compact(), IsOk());
  ASSERT_THAT((*store)->AddMember("job", Member("late", 9)), IsOk());
  // A commit of several changes is one entry.
  std::vector<Change> changes(3);
  for (int i = 0; i < 3; ++i) {
    changes[i].records.push_back(AddMemberRecord("job", Member(absl::StrCat("group-", i), 20 + i)));
  }
  ASSERT_THAT((*store)->Commit(absl::MakeSpan(changes)), IsOk());
  const std::string before = Dump(**store);

  auto reopened = EtcdStateStore::Open(client.get(), options);
  ASSERT_THAT(reopened, IsOk());
  EXPECT_EQ(Dump(**reopened), before);
  EXPECT_EQ((*reopened)->LastSequence(), (*store)->LastSequence());
  EXPECT_NE(before.find("group-2"), std::string::npos);
}

TEST(EtcdStateStoreTest, SnapshotsOnTheirOwnAndDeleteTheEntriesTheyHold) {
  auto client = ClientOf(SharedEtcd());
  EtcdStoreOptions options = OptionsFor(*client, NewPrefix());
  options.compact_after_bytes = 2000;
  auto store = EtcdStateStore::Open(client.get(), options);
  ASSERT_THAT(store, IsOk());
  Populate(**store, 40);
  auto keys = client->ReadPrefix(options.prefix + "state/log/");
  ASSERT_THAT(keys, IsOk());
  // 46 commits, but snapshots took all but the last few entries.
  EXPECT_LT(keys->kvs.size(), 20u);
  auto reopened = EtcdStateStore::Open(client.get(), options);
  ASSERT_THAT(reopened, IsOk());
  EXPECT_EQ(Dump(**reopened), Dump(**store));
}

TEST(EtcdStateStoreTest, AFencedWriteStopsTheStoreAndLeavesNothing) {
  auto client = ClientOf(SharedEtcd());
  EtcdStoreOptions options = OptionsFor(*client, NewPrefix());
  std::atomic<int> lost{0};
  options.on_lost = [&](const absl::Status&) { lost++; };
  auto store = EtcdStateStore::Open(client.get(), options);
  ASSERT_THAT(store, IsOk());
  ASSERT_THAT((*store)->PutCluster(Cluster("job", 1)), IsOk());
  // Another replica takes over: the leader key is created again.
  etcdserverpb::TxnRequest remove;
  remove.add_success()->mutable_request_delete_range()->set_key(options.leader_key);
  ASSERT_THAT(client->Txn(remove), IsOk());
  const int64_t new_term = PutLeaderKey(*client, options.leader_key);
  ASSERT_NE(new_term, options.term);

  EXPECT_THAT((*store)->AddMember("job", Member("a", 0)), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(lost.load(), 1);
  EXPECT_TRUE((*store)->lost());
  EXPECT_THAT((*store)->AddMember("job", Member("b", 1)), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(lost.load(), 1);

  options.term = new_term;
  options.on_lost = nullptr;
  auto successor = EtcdStateStore::Open(client.get(), options);
  ASSERT_THAT(successor, IsOk());
  auto clusters = (*successor)->LoadClusters();
  ASSERT_THAT(clusters, IsOk());
  ASSERT_EQ(clusters->size(), 1u);
  EXPECT_TRUE((*clusters)[0].members.empty());
  EXPECT_THAT((*successor)->AddMember("job", Member("c", 2)), IsOk());
}

TEST(EtcdStateStoreTest, ARecordOverTheLimitIsRefusedAlone) {
  auto client = ClientOf(SharedEtcd());
  auto store = EtcdStateStore::Open(client.get(), OptionsFor(*client, NewPrefix()));
  ASSERT_THAT(store, IsOk());
  ASSERT_THAT((*store)->PutCluster(Cluster("job", 1)), IsOk());
  EXPECT_THAT((*store)->PutRendezvousKey("job", 1, "huge", std::string(17 << 20, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("limit")));
  EXPECT_THAT((*store)->PutRendezvousKey("job", 1, "big", std::string(3 << 20, 'y')), IsOk());
  auto reopened = EtcdStateStore::Open(client.get(), OptionsFor(*client, NewPrefix()));
  ASSERT_THAT(reopened, IsOk());
}

// The only etcd member stops answering while a commit is sent: the call times out, the store
// reads the entry back once etcd answers again and finds it either written or absent, and the
// record is there exactly once.
TEST(EtcdStateStoreTest, AWriteWhoseOutcomeIsUnknownIsReadBack) {
  auto cluster = testing::EtcdCluster::Start(1);
  ASSERT_THAT(cluster, IsOk());
  auto client = ClientOf(**cluster, absl::Milliseconds(300));
  EtcdStoreOptions options = OptionsFor(*client, NewPrefix());
  auto store = EtcdStateStore::Open(client.get(), options);
  ASSERT_THAT(store, IsOk());
  ASSERT_THAT((*store)->PutCluster(Cluster("job", 1)), IsOk());
  (*cluster)->Signal(0, SIGSTOP);
  std::thread resume([&] {
    absl::SleepFor(absl::Milliseconds(1500));
    (*cluster)->Signal(0, SIGCONT);
  });
  EXPECT_THAT((*store)->AddMember("job", Member("a", 0)), IsOk());
  resume.join();
  EXPECT_FALSE((*store)->lost());
  auto reopened = EtcdStateStore::Open(client.get(), options);
  ASSERT_THAT(reopened, IsOk());
  auto clusters = (*reopened)->LoadClusters();
  ASSERT_THAT(clusters, IsOk());
  ASSERT_EQ((*clusters)[0].members.size(), 1u);
}

// etcd unreachable past resolve_timeout: the store gives up, says so once, and takes no more
// writes (the replica steps down; the next leader reads what etcd holds).
TEST(EtcdStateStoreTest, EtcdGoneLongerThanTheResolveTimeoutLosesTheStore) {
  auto cluster = testing::EtcdCluster::Start(1);
  ASSERT_THAT(cluster, IsOk());
  auto client = ClientOf(**cluster, absl::Milliseconds(200));
  EtcdStoreOptions options = OptionsFor(*client, NewPrefix());
  options.resolve_timeout = absl::Seconds(1);
  std::atomic<int> lost{0};
  options.on_lost = [&](const absl::Status&) { lost++; };
  auto store = EtcdStateStore::Open(client.get(), options);
  ASSERT_THAT(store, IsOk());
  ASSERT_THAT((*store)->PutCluster(Cluster("job", 1)), IsOk());
  (*cluster)->Kill(0);
  EXPECT_THAT((*store)->AddMember("job", Member("a", 0)), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(lost.load(), 1);
}

// kill -9 of the etcd leader while commits run on a 3-member cluster: every commit that
// returned OK is in etcd exactly once, and none that failed is.
TEST(EtcdStateStoreTest, KillingTheEtcdLeaderLosesAndDoublesNothing) {
  auto cluster = testing::EtcdCluster::Start(3);
  ASSERT_THAT(cluster, IsOk());
  auto client = ClientOf(**cluster, absl::Milliseconds(1000));
  EtcdStoreOptions options = OptionsFor(*client, NewPrefix());
  auto store = EtcdStateStore::Open(client.get(), options);
  ASSERT_THAT(store, IsOk());
  ASSERT_THAT((*store)->PutCluster(Cluster("job", 1)), IsOk());
  std::set<std::string> acknowledged;
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; i < 400 && !stop; ++i) {
      const std::string pod = absl::StrCat("pod-", i);
      if ((*store)->AddMember("job", Member(pod, i)).ok()) acknowledged.insert(pod);
    }
  });
  absl::SleepFor(absl::Milliseconds(300));
  auto leader = (*cluster)->Leader();
  ASSERT_THAT(leader, IsOk());
  (*cluster)->Kill(*leader);
  writer.join();
  EXPECT_FALSE((*store)->lost());
  EXPECT_EQ(acknowledged.size(), 400u);

  auto reopened = EtcdStateStore::Open(client.get(), options);
  ASSERT_THAT(reopened, IsOk());
  auto clusters = (*reopened)->LoadClusters();
  ASSERT_THAT(clusters, IsOk());
  std::multiset<std::string> stored;
  for (const StoredMember& member : (*clusters)[0].members) stored.insert(member.identity.pod());
  EXPECT_EQ(stored.size(), acknowledged.size());
  for (const std::string& pod : acknowledged) EXPECT_EQ(stored.count(pod), 1u) << pod;
}

}  // namespace
}  // namespace splitd::store
