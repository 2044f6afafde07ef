#include "daemon/core/leases.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace splitd::core {
namespace {

class LeasesTest : public ::testing::Test {
 protected:
  Member* Add(const std::string& node) {
    v1::MemberIdentity identity;
    identity.set_node(node);
    identity.set_incarnation(node);
    return registry_.Add(identity, {}, start_, "token-" + node);
  }

  const absl::Time start_ = absl::FromUnixSeconds(1800000000);
  const absl::Duration lease_ = absl::Seconds(10);
  const absl::Duration no_grace_ = absl::ZeroDuration();
  const absl::Duration grace_ = absl::Seconds(1);
  MemberRegistry registry_;
};

TEST_F(LeasesTest, ExpireMarksOnlyMembersSilentPastTheLease) {
  Member* quiet = Add("a");
  Member* talkative = Add("b");
  Leases::Touch(*talkative, start_ + absl::Seconds(5));
  EXPECT_TRUE(Leases::Expire(registry_, start_ + absl::Seconds(10), lease_, no_grace_).empty());
  const std::vector<const Member*> lost =
      Leases::Expire(registry_, start_ + absl::Seconds(11), lease_, no_grace_);
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0], quiet);
  EXPECT_EQ(quiet->liveness, Liveness::kLost);
  EXPECT_EQ(talkative->liveness, Liveness::kAlive);
  // Already lost: not lost again.
  EXPECT_EQ(Leases::Expire(registry_, start_ + absl::Seconds(12), lease_, no_grace_).size(), 0u);
}

TEST_F(LeasesTest, ExpireForeseesTheEarliestLossOfTheMembersStillAlive) {
  Member* quiet = Add("a");
  Member* talkative = Add("b");
  Member* streamless = Add("c");
  Leases::Touch(*talkative, start_ + absl::Seconds(5));
  Leases::Touch(*streamless, start_ + absl::Seconds(6));
  Leases::StreamOpened(*streamless);
  Leases::StreamClosed(*streamless, start_ + absl::Seconds(7));
  absl::Time next;
  EXPECT_TRUE(Leases::Expire(registry_, start_ + absl::Seconds(7), lease_, grace_, &next).empty());
  // The closed stream's grace ends first: 7 s + 1 s.
  EXPECT_EQ(next, start_ + absl::Seconds(8));
  EXPECT_EQ(Leases::LastAliveInstant(*quiet, lease_, grace_), start_ + absl::Seconds(10));
  EXPECT_EQ(Leases::Expire(registry_, start_ + absl::Seconds(9), lease_, grace_, &next).size(), 1u);
  EXPECT_EQ(next, start_ + absl::Seconds(10));  // quiet's lease
  EXPECT_EQ(Leases::Expire(registry_, start_ + absl::Seconds(16), lease_, grace_, &next).size(),
            2u);
  EXPECT_EQ(next, absl::InfiniteFuture());  // nobody alive
}

TEST_F(LeasesTest, ALeaseRunsOutOnlyOnceSomeoneIsHeardAfterItsEnd) {
  Member* quiet = Add("a");
  Member* talkative = Add("b");
  Leases::Touch(*talkative, start_ + absl::Seconds(5));
  // Nobody heard since 5 s: at 12 s quiet is past its lease's end (10 s) but held.
  Hearing hearing{start_ + absl::Seconds(5), absl::InfinitePast()};
  absl::Time next;
  int64_t held = -1;
  EXPECT_TRUE(Leases::Expire(registry_, start_ + absl::Seconds(12), lease_, no_grace_, &next,
                             hearing, &held)
                  .empty());
  EXPECT_EQ(held, 1);
  EXPECT_EQ(quiet->liveness, Liveness::kAlive);
  EXPECT_EQ(next, start_ + absl::Seconds(15));  // talkative's lease; quiet waits for a voice
  EXPECT_EQ(
      Leases::LastAliveInstant(*quiet, lease_, no_grace_, hearing, start_ + absl::Seconds(12)),
      absl::InfiniteFuture());
  // Someone is heard at 11 s, after quiet's lease ended: quiet is lost.
  hearing.last = start_ + absl::Seconds(11);
  const std::vector<const Member*> lost = Leases::Expire(registry_, start_ + absl::Seconds(12),
                                                         lease_, no_grace_, &next, hearing, &held);
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0], quiet);
  EXPECT_EQ(held, 0);
}

TEST_F(LeasesTest, AfterASilenceEveryLeaseStartsAnew) {
  Member* quiet = Add("a");
  Add("b");
  // The daemon heard nobody from 0 s to 30 s; since 30 s it hears again: every lease ends at
  // 40 s, however old the member's last sign of life.
  const Hearing hearing{start_ + absl::Seconds(31), start_ + absl::Seconds(30)};
  EXPECT_EQ(Leases::LeaseEnd(*quiet, lease_, hearing), start_ + absl::Seconds(40));
  int64_t held = -1;
  EXPECT_TRUE(Leases::Expire(registry_, start_ + absl::Seconds(35), lease_, no_grace_, nullptr,
                             hearing, &held)
                  .empty());
  EXPECT_EQ(held, 0);
  const Hearing later{start_ + absl::Seconds(41), start_ + absl::Seconds(30)};
  EXPECT_EQ(Leases::Expire(registry_, start_ + absl::Seconds(41), lease_, no_grace_, nullptr, later)
                .size(),
            2u);
}

TEST_F(LeasesTest, AClosedStreamNeedsNoOneElseHeard) {
  Member* closed = Add("a");
  Leases::StreamOpened(*closed);
  Leases::StreamClosed(*closed, start_ + absl::Seconds(1));
  const Hearing nobody{start_, absl::InfinitePast()};
  EXPECT_EQ(
      Leases::Expire(registry_, start_ + absl::Seconds(3), lease_, grace_, nullptr, nobody).size(),
      1u);
}

TEST_F(LeasesTest, RenewBringsALostMemberBackButTouchDoesNot) {
  Member* member = Add("a");
  Leases::Expire(registry_, start_ + absl::Seconds(11), lease_, no_grace_);
  Leases::Touch(*member, start_ + absl::Seconds(12));
  EXPECT_EQ(member->liveness, Liveness::kLost);
  EXPECT_EQ(member->last_seen, start_ + absl::Seconds(12));
  EXPECT_TRUE(Leases::Renew(registry_, *member, start_ + absl::Seconds(13)));
  EXPECT_EQ(member->liveness, Liveness::kAlive);
  EXPECT_FALSE(Leases::Renew(registry_, *member, start_ + absl::Seconds(14)));
}

TEST_F(LeasesTest, AClosedStreamLosesTheMemberAfterTheGraceUnlessItReopensOrHeartbeats) {
  Member* died = Add("a");
  Member* reconnected = Add("b");
  Member* heartbeating = Add("c");
  Member* never_streamed = Add("d");
  for (Member* member : {died, reconnected, heartbeating}) {
    Leases::StreamOpened(*member);
    Leases::StreamClosed(*member, start_ + absl::Seconds(2));
  }
  Leases::StreamOpened(*reconnected);
  Leases::Renew(registry_, *heartbeating, start_ + absl::Seconds(2.5));
  EXPECT_TRUE(Leases::Expire(registry_, start_ + absl::Seconds(3), lease_, grace_).empty());
  const absl::Time later = start_ + absl::Seconds(3.1);
  EXPECT_EQ(Leases::LossAt(*died, later, lease_, grace_), Leases::Loss::kStreamClosed);
  const std::vector<const Member*> lost = Leases::Expire(registry_, later, lease_, grace_);
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0], died);
  for (Member* alive : {reconnected, heartbeating, never_streamed}) {
    EXPECT_EQ(alive->liveness, Liveness::kAlive) << alive->member_id;
  }
  // Without a grace only the lease counts.
  Member* other = Add("e");
  Leases::StreamOpened(*other);
  Leases::StreamClosed(*other, start_);
  EXPECT_FALSE(Leases::LossAt(*other, start_ + absl::Seconds(9), lease_, no_grace_).has_value());
  EXPECT_EQ(Leases::LossAt(*other, start_ + absl::Seconds(11), lease_, grace_),
            Leases::Loss::kLeaseExpired);
}

TEST_F(LeasesTest, OneOfTwoStreamsClosingKeepsTheMember) {
  Member* member = Add("a");
  Leases::StreamOpened(*member);
  Leases::StreamOpened(*member);
  Leases::StreamClosed(*member, start_);
  EXPECT_FALSE(Leases::LossAt(*member, start_ + absl::Seconds(5), lease_, grace_).has_value());
  Leases::StreamClosed(*member, start_ + absl::Seconds(5));
  EXPECT_EQ(Leases::LossAt(*member, start_ + absl::Seconds(6.5), lease_, grace_),
            Leases::Loss::kStreamClosed);
}

TEST_F(LeasesTest, ARankIsMissingWhenItsMemberIsLostOrExcluded) {
  Member* a = Add("a");
  Member* b = Add("b");
  registry_.AssignRanks({a, b});
  EXPECT_FALSE(Leases::AnyRankMissing(registry_));
  registry_.Exclude({b->member_id});
  EXPECT_TRUE(Leases::AnyRankMissing(registry_));
}

}  // namespace
}  // namespace splitd::core
