#include "worker/gloo/split_exchange.h"

#include <vector>

#include "gtest/gtest.h"
#include "worker/group_builder.h"

namespace splitd::worker {
namespace {

GroupAssignment Group(int kind_index, std::vector<int32_t> members, int rank) {
  GroupAssignment group;
  group.kind = "k" + std::to_string(kind_index);
  group.kind_index = kind_index;
  group.members = members;
  for (size_t i = 0; i < members.size(); ++i) {
    if (members[i] == rank) group.local_rank = static_cast<int>(i);
  }
  return group;
}

TEST(PairTimeoutTest, AConnectWaitingFiveTimesThePairTimeoutStaysWithinTheBound) {
  EXPECT_EQ(PairTimeout(std::chrono::milliseconds(30000)), std::chrono::milliseconds(6000));
  EXPECT_EQ(PairTimeout(std::chrono::milliseconds(1001)), std::chrono::milliseconds(201));
  EXPECT_EQ(PairTimeout(std::chrono::milliseconds(1)), std::chrono::milliseconds(1));
}

TEST(PlanSplitPeersTest, AggregatesSharedGroupsPerPeerInGroupOrder) {
  // Rank 3 in {0..5}, {3,4,5} and {5,3}: peer 5 shares all three groups.
  const std::vector<GroupAssignment> groups = {Group(0, {0, 1, 2, 3, 4, 5}, 3),
                                               Group(1, {3, 4, 5}, 3), Group(2, {5, 3}, 3)};
  const std::vector<SplitPeer> peers = PlanSplitPeers(3, groups);
  ASSERT_EQ(peers.size(), 5u);
  EXPECT_EQ(peers[0].world_rank, 0);
  ASSERT_EQ(peers[0].links.size(), 1u);
  EXPECT_EQ(peers[0].links[0].group, 0u);
  EXPECT_EQ(peers[0].links[0].peer_local_rank, 0);
  const SplitPeer& five = peers[4];
  EXPECT_EQ(five.world_rank, 5);
  ASSERT_EQ(five.links.size(), 3u);
  EXPECT_EQ(five.links[0].group, 0u);
  EXPECT_EQ(five.links[0].peer_local_rank, 5);
  EXPECT_EQ(five.links[1].group, 1u);
  EXPECT_EQ(five.links[1].peer_local_rank, 2);
  EXPECT_EQ(five.links[2].group, 2u);
  EXPECT_EQ(five.links[2].peer_local_rank, 0);
}

TEST(PlanSplitPeersTest, SizeOneGroupsNeedNoPeers) {
  EXPECT_TRUE(PlanSplitPeers(2, {Group(0, {2}, 2), Group(1, {2}, 2)}).empty());
}

TEST(PlanSplitPeersTest, RecordHoldsALengthAndTheLargestAddress) {
  EXPECT_EQ(SplitRecordSize(), sizeof(uint32_t) + 192u);
}

}  // namespace
}  // namespace splitd::worker
