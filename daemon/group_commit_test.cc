#include "daemon/group_commit.h"

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/status_matchers.h"
#include "daemon/store/memory_state_store.h"
#include "daemon/store/records.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace splitd::daemon {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A memory store whose commits can be held at a gate, fail on request, and are counted.
class GatedStore : public store::StateStore {
 public:
  absl::Status Commit(absl::Span<store::Change> changes) override {
    {
      absl::MutexLock lock(&mu_);
      const int index = ++entered_;
      changed_.SignalAll();
      while (!open_ && index == hold_) changed_.Wait(&mu_);
      sizes_.push_back(static_cast<int>(changes.size()));
      if (fail_next_) {
        fail_next_ = false;
        for (store::Change& change : changes) {
          change.status = absl::ResourceExhaustedError("no space left on device");
        }
        return absl::ResourceExhaustedError("no space left on device");
      }
    }
    return memory_.Commit(changes);
  }
  absl::StatusOr<std::vector<store::ClusterState>> LoadClusters() const override {
    return memory_.LoadClusters();
  }

  // Holds the `index`th commit (from 1) at the gate until Open.
  void Hold(int index) {
    absl::MutexLock lock(&mu_);
    hold_ = index;
  }
  void Open() {
    absl::MutexLock lock(&mu_);
    open_ = true;
    changed_.SignalAll();
  }
  void WaitEntered(int n) {
    absl::MutexLock lock(&mu_);
    while (entered_ < n) changed_.Wait(&mu_);
  }
  void FailNext() {
    absl::MutexLock lock(&mu_);
    fail_next_ = true;
  }
  std::vector<int> sizes() const {
    absl::MutexLock lock(&mu_);
    return sizes_;
  }
  std::vector<std::string> Pods() const {
    std::vector<std::string> pods;
    absl::StatusOr<std::vector<store::ClusterState>> clusters = memory_.LoadClusters();
    for (const store::ClusterState& cluster : *clusters) {
      for (const store::StoredMember& member : cluster.members) {
        pods.push_back(member.identity.pod());
      }
    }
    return pods;
  }

 private:
  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  int entered_ ABSL_GUARDED_BY(mu_) = 0;
  int hold_ ABSL_GUARDED_BY(mu_) = 0;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
  bool fail_next_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<int> sizes_ ABSL_GUARDED_BY(mu_);
  store::MemoryStateStore memory_;
};

std::vector<internal::LogRecord> Cluster() {
  store::ClusterRecord record;
  record.topology.set_cluster("llama");
  record.epoch = 1;
  return {store::PutClusterRecord(record)};
}

std::vector<internal::LogRecord> Member(const std::string& pod) {
  store::StoredMember member;
  member.identity.set_cluster("llama");
  member.identity.set_pod(pod);
  return {store::AddMemberRecord("llama", member)};
}

class GroupCommitTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_THAT(commits_.Wait(commits_.Enqueue(Cluster())), IsOk()); }

  GatedStore store_;
  GroupCommit commits_{&store_};
};

TEST_F(GroupCommitTest, ChangesQueuedDuringAWriteGoOutInOneCommitInOrder) {
  store_.Hold(2);  // the cluster's commit went through already
  GroupCommit::TicketPtr first = commits_.Enqueue(Member("a"));
  absl::Status first_status;
  std::thread writer([&] { first_status = commits_.Wait(first); });
  store_.WaitEntered(2);  // "a" is being written, held at the gate
  std::vector<GroupCommit::TicketPtr> tickets;
  for (const char* pod : {"b", "c", "d"}) tickets.push_back(commits_.Enqueue(Member(pod)));
  std::vector<absl::Status> statuses(tickets.size());
  std::vector<std::thread> waiters;
  for (size_t i = 0; i < tickets.size(); ++i) {
    waiters.emplace_back([&, i] { statuses[i] = commits_.Wait(tickets[i]); });
  }
  store_.Open();
  writer.join();
  for (std::thread& waiter : waiters) waiter.join();

  EXPECT_THAT(first_status, IsOk());
  for (const absl::Status& status : statuses) EXPECT_THAT(status, IsOk());
  EXPECT_THAT(store_.sizes(), ElementsAre(1, 1, 3));
  EXPECT_THAT(store_.Pods(), ElementsAre("a", "b", "c", "d"));
  EXPECT_EQ(commits_.stats().groups, 3u);
  EXPECT_EQ(commits_.stats().changes, 5u);
  EXPECT_EQ(commits_.Pending(), nullptr);
}

TEST_F(GroupCommitTest, AChangeIsSettledOnlyOnceItAndEveryEarlierOneAreDurable) {
  GroupCommit::TicketPtr a = commits_.Enqueue(Member("a"));
  GroupCommit::TicketPtr b = commits_.Enqueue(Member("b"));
  EXPECT_EQ(commits_.Pending(), b);
  // Waiting for the later change writes the earlier one with it.
  ASSERT_THAT(commits_.Wait(b), IsOk());
  EXPECT_THAT(store_.Pods(), ElementsAre("a", "b"));
  EXPECT_THAT(commits_.Wait(a), IsOk());
  EXPECT_THAT(store_.sizes(), ElementsAre(1, 2));
}

TEST_F(GroupCommitTest, AReaderWaitsForThePendingChangeItSaw) {
  store_.Hold(2);
  GroupCommit::TicketPtr a = commits_.Enqueue(Member("a"));
  GroupCommit::TicketPtr seen = commits_.Pending();
  ASSERT_EQ(seen, a);
  absl::Notification read;
  std::thread reader([&] {
    EXPECT_THAT(commits_.AwaitState(seen), IsOk());
    read.Notify();
  });
  store_.WaitEntered(2);
  EXPECT_FALSE(read.HasBeenNotified());  // held at the gate: "a" is not durable yet
  store_.Open();
  reader.join();
  EXPECT_THAT(store_.Pods(), ElementsAre("a"));
  EXPECT_THAT(commits_.AwaitState(nullptr), IsOk());
}

TEST_F(GroupCommitTest, OnSettledReturnsAtOnceAndAnswersOnceTheChangeIsDurable) {
  store_.Hold(2);
  GroupCommit::TicketPtr a = commits_.Enqueue(Member("a"));
  std::thread writer([&] { EXPECT_THAT(commits_.Wait(a), IsOk()); });
  store_.WaitEntered(2);
  GroupCommit::TicketPtr b = commits_.Enqueue(Member("b"));
  absl::Notification answered;
  std::vector<std::string> pods_when_answered;
  absl::Status status = absl::UnknownError("not answered");
  // Another thread is writing: OnSettled leaves its callback and returns.
  commits_.OnSettled(b, [&](absl::Status settled) {
    status = settled;
    pods_when_answered = store_.Pods();
    answered.Notify();
  });
  EXPECT_FALSE(answered.HasBeenNotified());
  store_.Open();
  writer.join();
  answered.WaitForNotification();
  EXPECT_THAT(status, IsOk());
  EXPECT_THAT(pods_when_answered, ElementsAre("a", "b"));
  // A settled ticket answers at once, on the caller's thread; a null state ticket too.
  bool at_once = false;
  commits_.OnState(b, [&](absl::Status settled) { at_once = settled.ok(); });
  EXPECT_TRUE(at_once);
  at_once = false;
  commits_.OnState(nullptr, [&](absl::Status settled) { at_once = settled.ok(); });
  EXPECT_TRUE(at_once);
}

TEST_F(GroupCommitTest, EveryCallbackLeftOnAChangeIsCalled) {
  // A registration's own callback and a rejoin that read the same pending change both wait on
  // one ticket: each is answered.
  store_.Hold(2);
  GroupCommit::TicketPtr a = commits_.Enqueue(Member("a"));
  std::thread writer([&] { EXPECT_THAT(commits_.Wait(a), IsOk()); });
  store_.WaitEntered(2);
  GroupCommit::TicketPtr b = commits_.Enqueue(Member("b"));
  absl::Notification owner_answered;
  absl::Notification reader_answered;
  commits_.OnSettled(b, [&](absl::Status settled) {
    EXPECT_THAT(settled, IsOk());
    owner_answered.Notify();
  });
  ASSERT_EQ(commits_.Pending(), b);
  commits_.OnState(commits_.Pending(), [&](absl::Status settled) {
    EXPECT_THAT(settled, IsOk());
    reader_answered.Notify();
  });
  store_.Open();
  writer.join();
  EXPECT_TRUE(owner_answered.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_TRUE(reader_answered.WaitForNotificationWithTimeout(absl::Seconds(30)));
}

TEST_F(GroupCommitTest, AFailedWriteFailsItsChangesAndThoseQueuedOnThemOnly) {
  std::vector<absl::Status> handled;
  commits_.SetFailureHandler([&](const absl::Status& status) {
    handled.push_back(status);
    commits_.FailQueued(status);
  });
  store_.Hold(2);
  store_.FailNext();
  GroupCommit::TicketPtr a = commits_.Enqueue(Member("a"));
  absl::Status a_status;
  std::thread writer([&] { a_status = commits_.Wait(a); });
  store_.WaitEntered(2);
  // Queued while the failing write is under way: computed on "a", so failed with it.
  GroupCommit::TicketPtr b = commits_.Enqueue(Member("b"));
  store_.Open();
  writer.join();
  EXPECT_THAT(a_status, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(commits_.Wait(b), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("earlier")));
  EXPECT_THAT(commits_.AwaitState(a), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_EQ(handled.size(), 1u);
  EXPECT_THAT(handled[0], StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(store_.Pods(), ::testing::IsEmpty());
  // The committer goes on: the next change is written.
  EXPECT_THAT(commits_.Wait(commits_.Enqueue(Member("c"))), IsOk());
  EXPECT_THAT(store_.Pods(), ElementsAre("c"));
}

TEST_F(GroupCommitTest, ARefusedChangeThatIsNotCriticalFailsAloneAndTakesNothingBack) {
  int handled = 0;
  commits_.SetFailureHandler([&](const absl::Status&) { ++handled; });
  GroupCommit::TicketPtr refused =
      commits_.Enqueue({store::PutKeyRecord("llama", /*epoch=*/7, "k", "v")}, /*critical=*/false);
  GroupCommit::TicketPtr after = commits_.Enqueue(Member("a"));
  EXPECT_THAT(commits_.Wait(after), IsOk());
  EXPECT_THAT(commits_.Wait(refused), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(commits_.AwaitState(refused), IsOk());
  EXPECT_EQ(handled, 0);
  EXPECT_THAT(store_.Pods(), ElementsAre("a"));
}

TEST_F(GroupCommitTest, ARefusedCriticalChangeIsHandledLikeAFailedWrite) {
  std::vector<absl::Status> handled;
  commits_.SetFailureHandler([&](const absl::Status& status) { handled.push_back(status); });
  GroupCommit::TicketPtr refused =
      commits_.Enqueue({store::AddMemberRecord("no-such-cluster", store::StoredMember{})});
  EXPECT_THAT(commits_.Wait(refused), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(commits_.AwaitState(refused), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_EQ(handled.size(), 1u);
  EXPECT_THAT(handled[0], StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(GroupCommitTest, ManyThreadsEachSeeTheirOwnChangeDurable) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 50;
  std::vector<std::thread> threads;
  absl::Mutex order_mu;  // a caller's lock: fixes the order of Enqueue
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string pod = absl::StrCat("t", t, "-", i);
        GroupCommit::TicketPtr ticket;
        {
          absl::MutexLock lock(&order_mu);
          ticket = commits_.Enqueue(Member(pod));
        }
        ASSERT_THAT(commits_.Wait(ticket), IsOk());
        const std::vector<std::string> pods = store_.Pods();
        ASSERT_NE(std::find(pods.begin(), pods.end(), pod), pods.end()) << pod;
      }
    });
  }
  store_.Open();
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(store_.Pods().size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(commits_.stats().changes, static_cast<uint64_t>(kThreads * kPerThread + 1));
}

}  // namespace
}  // namespace splitd::daemon
