#ifndef SPLITD_WORKER_GLOO_SPLIT_EXCHANGE_H_
#define SPLITD_WORKER_GLOO_SPLIT_EXCHANGE_H_

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "gloo/context.h"
#include "worker/group_builder.h"

namespace splitd::worker {

// One link this rank shares with a world peer: the peer's local rank in one of our groups.
struct SplitLink {
  size_t group = 0;         // position in the ordered group list
  int peer_local_rank = 0;  // the peer's position in that group's members
};

// Everything this rank exchanges with one world peer in the split round: one address record
// per group the two share, in group (kind_index) order. The peer computes the mirror image
// from the same plan, so both know the message size without asking.
struct SplitPeer {
  int world_rank = 0;
  std::vector<SplitLink> links;
};

// The world peers this rank shares a group with, ascending by world rank. `groups` must be
// ordered by kind_index and already checked (members contain `my_rank` at local_rank).
std::vector<SplitPeer> PlanSplitPeers(int my_rank, const std::vector<GroupAssignment>& groups);

// Bytes of one address record on the wire: a 32-bit length and a fixed-size address field.
size_t SplitRecordSize();

// Gloo's tcp pair waits five times its timeout to connect, and a newer plan cannot interrupt that
// wait: the pair timeout that keeps a connect within `bound` (every operation on the pairs sets
// `bound` itself).
inline std::chrono::milliseconds PairTimeout(std::chrono::milliseconds bound) {
  return std::max(std::chrono::milliseconds(1), (bound + std::chrono::milliseconds(4)) / 5);
}

// The Gloo analogue of a communicator split. For every group in `groups` (ordered by
// kind_index, already checked) it creates a transport context on the world's device and pairs
// to the group's peers, sends each world peer the addresses of all groups the two share in one
// message over the world's pairs (slot (0xA0 << 56) | epoch, so it cannot meet a collective),
// and connects the pairs: within a group in ascending peer local rank on every member (Gloo's
// TCP connect blocks until the peer connects the same pair, so any other order can deadlock),
// the groups side by side, one thread each, since they share no pair. No rendezvous traffic.
// Ranks that share no group never talk.
//
// Returns one context per group, in the order of `groups`. Never throws: Gloo failures become
// DEADLINE_EXCEEDED (timeouts), UNAVAILABLE (transport) or INTERNAL statuses.
absl::StatusOr<std::vector<std::shared_ptr<::gloo::Context>>> SplitGroups(
    const std::shared_ptr<::gloo::Context>& world, const std::vector<GroupAssignment>& groups,
    int64_t epoch, std::chrono::milliseconds timeout);

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_GLOO_SPLIT_EXCHANGE_H_
