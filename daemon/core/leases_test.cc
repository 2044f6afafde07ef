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
  MemberRegistry registry_;
};

TEST_F(LeasesTest, ExpireMarksOnlyMembersSilentPastTheLease) {
  Member* quiet = Add("a");
  Member* talkative = Add("b");
  Leases::Touch(*talkative, start_ + absl::Seconds(5));
  EXPECT_TRUE(Leases::Expire(registry_, start_ + absl::Seconds(10), lease_).empty());
  const std::vector<const Member*> lost =
      Leases::Expire(registry_, start_ + absl::Seconds(11), lease_);
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0], quiet);
  EXPECT_EQ(quiet->liveness, Liveness::kLost);
  EXPECT_EQ(talkative->liveness, Liveness::kAlive);
  // Already lost: not lost again.
  EXPECT_EQ(Leases::Expire(registry_, start_ + absl::Seconds(12), lease_).size(), 0u);
}

TEST_F(LeasesTest, RenewBringsALostMemberBackButTouchDoesNot) {
  Member* member = Add("a");
  Leases::Expire(registry_, start_ + absl::Seconds(11), lease_);
  Leases::Touch(*member, start_ + absl::Seconds(12));
  EXPECT_EQ(member->liveness, Liveness::kLost);
  EXPECT_EQ(member->last_seen, start_ + absl::Seconds(12));
  EXPECT_TRUE(Leases::Renew(*member, start_ + absl::Seconds(13)));
  EXPECT_EQ(member->liveness, Liveness::kAlive);
  EXPECT_FALSE(Leases::Renew(*member, start_ + absl::Seconds(14)));
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
