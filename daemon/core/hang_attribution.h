#ifndef SPLITD_DAEMON_CORE_HANG_ATTRIBUTION_H_
#define SPLITD_DAEMON_CORE_HANG_ATTRIBUTION_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "splitd/v1/status.pb.h"

namespace splitd::core {

// Most ranks ClusterStatus.waiting_on lists, and most keys shown per member.
inline constexpr int64_t kMaxWaitingRanks = 32;
inline constexpr size_t kMaxWaitingKeysShown = 4;

// Who holds an epoch back, from what the status already says (Membership::Status) and which
// members are blocked in a rendezvous wait right now (RendezvousSpaces::WaitingKeys, by member
// id). A rank blocked in a wait waits on others, so the ranks that are not blocked are the ones
// to look at. Pure: no I/O, no clock reads. Stateless and thread-safe.
class HangAttribution {
 public:
  // Keys each member waits for, by member id.
  using WaitingKeys = std::map<std::string, std::vector<std::string>>;

  // Fills `status->members[*].waiting_for_keys` from `waiting` (at most kMaxWaitingKeysShown
  // keys, then "(+N more)"), and `waiting_on` / `waiting_on_total` while the epoch is under way
  // (PLANNED..VALIDATING, or DEGRADED; nothing when PENDING, READY or FAILED):
  //   - the layer waited on is "agent" while some rank's agent is not READY; else "workload"
  //     when READY waits for workloads (status->readiness) or some workload reported and some
  //     is not READY; else nothing is awaited;
  //   - candidates are the ranks of that layer not READY; when some of them are not blocked in
  //     a rendezvous wait, only those are listed (they hold the blocked ones back), otherwise
  //     all of them;
  //   - members that cannot make progress (LOST or GONE) holding ranks are always listed, first;
  //     then the longest in their phase first, then by rank; at most kMaxWaitingRanks entries,
  //     waiting_on_total counting all.
  // A workload that has not reported is PLANNED since its agent's READY. O(world log 32).
  static void Fill(const WaitingKeys& waiting, absl::Time now, v1::ClusterStatus* status);
};

}  // namespace splitd::core

#endif  // SPLITD_DAEMON_CORE_HANG_ATTRIBUTION_H_
