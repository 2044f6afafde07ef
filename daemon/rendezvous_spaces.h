#ifndef SPLITD_DAEMON_RENDEZVOUS_SPACES_H_
#define SPLITD_DAEMON_RENDEZVOUS_SPACES_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace splitd::daemon {

// Bounds that keep one rendezvous space from growing the daemon without limit.
struct RendezvousLimits {
  int64_t max_key_bytes = 512;
  int64_t max_value_bytes = int64_t{1} << 20;
  int64_t max_keys_per_get = 4096;
  int64_t max_space_bytes = int64_t{256} << 20;
  absl::Duration max_wait = absl::Minutes(10);
};

// The small key-value spaces agents bootstrap through, one per (cluster, epoch) (DESIGN.md,
// "Rendezvous"): set, get that waits for its keys until a deadline, and an atomic counter.
// Keys of finished epochs are dropped, and whoever waits on them is told (ABORTED).
//
// Threading: thread-safe. Callbacks of Get run on the thread that completes them (a Set, the
// deadline thread, Drop or Get itself when the keys already exist), never under the lock.
class RendezvousSpaces {
 public:
  using GetCallback = std::function<void(absl::StatusOr<std::vector<std::string>>)>;
  // Makes a key's new value durable; called under the spaces' lock, before the value is stored
  // and waiters are told, so the durable order is the order of the writes. An error refuses
  // the write.
  using PersistFn = std::function<absl::Status(const std::string& cluster, int64_t epoch,
                                               const std::string& key, const std::string& value)>;

  explicit RendezvousSpaces(RendezvousLimits limits = {}, PersistFn persist = nullptr);
  ~RendezvousSpaces();

  RendezvousSpaces(const RendezvousSpaces&) = delete;
  RendezvousSpaces& operator=(const RendezvousSpaces&) = delete;

  // Sets `key`; an existing value is replaced. INVALID_ARGUMENT for an empty or long key or a
  // long value, RESOURCE_EXHAUSTED when the space is full.
  absl::Status Set(const std::string& cluster, int64_t epoch, const std::string& key,
                   std::string value);

  // Adds `delta` to the counter `key` (created at 0) and returns the new value. A counter reads
  // back through Get as its decimal text. FAILED_PRECONDITION when `key` holds a non-counter.
  absl::StatusOr<int64_t> Add(const std::string& cluster, int64_t epoch, const std::string& key,
                              int64_t delta);

  // Calls `done` exactly once: with the values of `keys` in order once all exist, with
  // DEADLINE_EXCEEDED at `deadline` (capped at now + max_wait), with ABORTED when the space is
  // dropped, or never when Cancel(waiter_id) returned true first. `waiter_id` is the caller's
  // unique handle for Cancel. Bad keys are refused through `done` at once.
  void Get(const std::string& cluster, int64_t epoch, std::vector<std::string> keys,
           absl::Time deadline, uint64_t waiter_id, GetCallback done);

  // Withdraws a waiting Get. True when it was still waiting: its callback will not run.
  bool Cancel(uint64_t waiter_id);

  // Drops every space of `cluster` with an epoch below `keep_epoch` (all of them for
  // INT64_MAX), completing their waiters with ABORTED.
  void Drop(const std::string& cluster, int64_t keep_epoch);

  // Puts back the keys of a recovered space (nothing is persisted again).
  void Restore(const std::string& cluster, int64_t epoch,
               const std::map<std::string, std::string>& keys);

  // Number of keys in one space (for tests and status).
  int64_t KeyCount(const std::string& cluster, int64_t epoch) const;

  // Number of keys in every space together (for metrics).
  int64_t TotalKeyCount() const;

 private:
  using SpaceKey = std::pair<std::string, int64_t>;
  struct Waiter {
    SpaceKey space;
    std::vector<std::string> keys;
    absl::Time deadline;
    GetCallback done;
  };
  struct Space {
    std::map<std::string, std::string> values;
    int64_t bytes = 0;
    std::map<uint64_t, Waiter*> waiters;  // by waiter id, waiting on this space
  };
  using Completion = std::pair<GetCallback, absl::StatusOr<std::vector<std::string>>>;

  absl::Status CheckKey(const std::string& key) const;
  absl::Status Store(Space& space, const std::string& key, std::string value)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Completes the space's waiters whose keys all exist now.
  void CollectReady(Space& space, std::vector<Completion>* completions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static std::vector<std::string> Values(const Space& space, const std::vector<std::string>& keys);
  void ExpireLoop();

  const RendezvousLimits limits_;
  const PersistFn persist_;
  mutable absl::Mutex mu_;
  std::map<SpaceKey, Space> spaces_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::unique_ptr<Waiter>> waiters_ ABSL_GUARDED_BY(mu_);
  std::multimap<absl::Time, uint64_t> deadlines_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread expirer_;
};

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_RENDEZVOUS_SPACES_H_
