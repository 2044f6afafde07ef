// LeaderElection against a real etcd: one leader at a time, the next one takes over when the
// leader resigns or its lease goes, and a leader whose lease goes learns it.

#include "daemon/etcd/leader_election.h"

#include <signal.h>

#include <atomic>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/testing/etcd_cluster.h"

namespace splitd::etcd {
namespace {

using splitd::testing::IsOk;
using splitd::testing::StatusIs;

class LeaderElectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = splitd::testing::EtcdCluster::Start(1);
    ASSERT_THAT(cluster, IsOk());
    cluster_ = *std::move(cluster);
    EtcdOptions options;
    options.endpoints = cluster_->endpoints();
    auto client = EtcdClient::Create(options);
    ASSERT_THAT(client, IsOk());
    client_ = *std::move(client);
  }

  std::unique_ptr<LeaderElection> Candidate(const std::string& name, std::atomic<int>* lost) {
    ElectionOptions options;
    options.prefix = "/election-test/";
    options.advertise = name;
    options.ttl = absl::Seconds(2);
    return std::make_unique<LeaderElection>(client_.get(), options,
                                            [lost](const absl::Status&) { ++*lost; });
  }

  std::unique_ptr<splitd::testing::EtcdCluster> cluster_;
  std::unique_ptr<EtcdClient> client_;
};

TEST_F(LeaderElectionTest, TheSecondCandidateWaitsUntilTheFirstResigns) {
  std::atomic<int> lost_a{0}, lost_b{0};
  auto a = Candidate("a:1", &lost_a);
  auto b = Candidate("b:1", &lost_b);
  absl::Notification stop;
  auto first = a->Campaign(&stop);
  ASSERT_THAT(first, IsOk());
  EXPECT_TRUE(a->Valid());

  absl::StatusOr<Leadership> second = absl::UnknownError("not yet");
  absl::Notification b_won;
  std::thread waiting([&] {
    second = b->Campaign(&stop);
    b_won.Notify();
  });
  // Longer than the TTL: a's renewals keep it the leader, and b keeps waiting.
  EXPECT_FALSE(b_won.WaitForNotificationWithTimeout(absl::Seconds(3)));
  EXPECT_TRUE(a->Valid());
  EXPECT_EQ(b->LeaderAddress(), "a:1");

  a->Resign();
  EXPECT_FALSE(a->Valid());
  ASSERT_TRUE(b_won.WaitForNotificationWithTimeout(absl::Seconds(5)));
  waiting.join();
  ASSERT_THAT(second, IsOk());
  EXPECT_GT(second->term, first->term);
  EXPECT_TRUE(b->Valid());
  EXPECT_EQ(lost_a.load(), 0);  // resigning is not losing
  EXPECT_EQ(lost_b.load(), 0);
}

TEST_F(LeaderElectionTest, ALeaderWhoseLeaseGoesLearnsItAndTheNextTakesOver) {
  std::atomic<int> lost_a{0}, lost_b{0};
  auto a = Candidate("a:1", &lost_a);
  absl::Notification stop;
  auto first = a->Campaign(&stop);
  ASSERT_THAT(first, IsOk());
  // The lease disappears behind a's back (as when etcd let it expire).
  auto read = client_->ReadPrefix("/election-test/leader/");
  ASSERT_THAT(read, IsOk());
  ASSERT_EQ(read->kvs.size(), 1u);
  ASSERT_THAT(client_->LeaseRevoke(read->kvs[0].lease()), IsOk());

  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (lost_a.load() == 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(lost_a.load(), 1);
  EXPECT_FALSE(a->Valid());

  auto b = Candidate("b:1", &lost_b);
  auto second = b->Campaign(&stop);
  ASSERT_THAT(second, IsOk());
  EXPECT_GT(second->term, first->term);
}

TEST_F(LeaderElectionTest, ALeaderCutOffFromEtcdIsNotValidOnceItsTtlPasses) {
  std::atomic<int> lost{0};
  auto a = Candidate("a:1", &lost);
  absl::Notification stop;
  ASSERT_THAT(a->Campaign(&stop), IsOk());
  cluster_->Signal(0, SIGSTOP);
  const absl::Time stopped = absl::Now();
  while (a->Valid() && absl::Now() - stopped < absl::Seconds(10)) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  const absl::Duration valid_for = absl::Now() - stopped;
  cluster_->Signal(0, SIGCONT);
  EXPECT_FALSE(a->Valid());
  EXPECT_LE(valid_for, absl::Seconds(2) + absl::Milliseconds(500));
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (lost.load() == 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(lost.load(), 1);
}

TEST_F(LeaderElectionTest, CampaignReturnsCancelledWhenStopped) {
  std::atomic<int> lost_a{0}, lost_b{0};
  auto a = Candidate("a:1", &lost_a);
  auto b = Candidate("b:1", &lost_b);
  absl::Notification never, stop;
  ASSERT_THAT(a->Campaign(&never), IsOk());
  std::thread stopper([&] {
    absl::SleepFor(absl::Milliseconds(300));
    stop.Notify();
  });
  EXPECT_THAT(b->Campaign(&stop), StatusIs(absl::StatusCode::kCancelled));
  stopper.join();
}

}  // namespace
}  // namespace splitd::etcd
