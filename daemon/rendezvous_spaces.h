#ifndef SPLITD_DAEMON_RENDEZVOUS_SPACES_H_
#define SPLITD_DAEMON_RENDEZVOUS_SPACES_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace splitd::daemon {

// Bounds that keep one rendezvous space from growing the daemon without limit.
struct RendezvousLimits {
  int64_t max_key_bytes = 512;
  int64_t max_value_bytes = int64_t{1} << 20;
  int64_t max_keys_per_get = 4096;
  int64_t max_space_bytes = int64_t{256} << 20;
  absl::Duration max_wait = absl::Minutes(10);
};

// The small key-value spaces agents bootstrap through, one per (cluster, epoch)
// (docs/architecture.md, "Rendezvous"): set, get that waits for its keys until a deadline, an
// atomic counter, and the rest of what torch.distributed's Store needs (compare-and-set, check,
// delete), so a workload can use a space as its Store. Keys of finished epochs are dropped, and
// whoever waits on them is told (ABORTED).
//
// Threading: thread-safe. Callbacks of Get run on the thread that completes them (a write, the
// deadline thread, Drop or Get itself when the keys already exist), never under the lock.
class RendezvousSpaces {
 public:
  using GetCallback = std::function<void(absl::StatusOr<std::vector<std::string>>)>;
  // Calls its argument, once, when a queued change is durable (OK) or refused (why), with no
  // lock of the spaces held.
  using Durable = std::function<void(std::function<void(absl::Status)>)>;
  // Queues a key's new value to be made durable; called under the spaces' lock, so the durable
  // order is the order of the writes. The spaces wait for the returned Durable without their
  // lock and without holding a thread (so concurrent writes share the store's sync), and only
  // then store the value and tell waiters; an error refuses the write.
  using PersistFn = std::function<Durable(const std::string& cluster, int64_t epoch,
                                          const std::string& key, const std::string& value)>;
  // Queues a key's removal, on the same terms as PersistFn (same lock, so a removal and a write
  // of the same key reach the store in the order they are made).
  using PersistDeleteFn =
      std::function<Durable(const std::string& cluster, int64_t epoch, const std::string& key)>;

  // What Check found.
  struct CheckResult {
    bool all_exist = false;
    int64_t num_keys = 0;
  };

  // WaitingKeys names at most this many keys per member: enough to say what a rank is stuck
  // on, while a Get of thousands of keys does not swell a status reply.
  static constexpr size_t kMaxWaitingKeysPerMember = 8;

  // Nothing is persisted without `persist`. With `persist` but without `persist_delete`, Delete
  // is refused: a removal that a restart would undo is worse than none. Deadlines are on
  // `clock` (the system's when null; it must outlive the spaces), which the expiry thread reads
  // at least every 200 ms.
  explicit RendezvousSpaces(RendezvousLimits limits = {}, PersistFn persist = nullptr,
                            PersistDeleteFn persist_delete = nullptr, const Clock* clock = nullptr);
  ~RendezvousSpaces();

  RendezvousSpaces(const RendezvousSpaces&) = delete;
  RendezvousSpaces& operator=(const RendezvousSpaces&) = delete;

  // Sets `key`; an existing value is replaced. INVALID_ARGUMENT for an empty or long key or a
  // long value, RESOURCE_EXHAUSTED when the space is full.
  absl::Status Set(const std::string& cluster, int64_t epoch, const std::string& key,
                   std::string value);
  // The same, answering through `done` (once, with no lock held) instead of waiting.
  void Set(const std::string& cluster, int64_t epoch, const std::string& key, std::string value,
           std::function<void(absl::Status)> done);

  // Adds `delta` to the counter `key` (created at 0) and returns the new value. A counter reads
  // back through Get as its decimal text. FAILED_PRECONDITION when `key` holds a non-counter.
  absl::StatusOr<int64_t> Add(const std::string& cluster, int64_t epoch, const std::string& key,
                              int64_t delta);
  // The same, answering through `done` (once, with no lock held) instead of waiting.
  void Add(const std::string& cluster, int64_t epoch, const std::string& key, int64_t delta,
           std::function<void(absl::StatusOr<int64_t>)> done);

  // torch TCPStore's compare_set: a missing `key` is set to `desired` when `expected` is empty
  // (and `desired` returned), or left missing (and `expected` returned); a present `key` is
  // replaced by `desired` when it holds `expected`. Returns the key's value afterwards. A
  // counter compares and is replaced as its decimal text. Checks as Set, with the fields
  // named `expected` and `desired`. Answered once what it returns is durable: an answer read
  // from a write still queued is queued again (the same value) and answered with it.
  absl::StatusOr<std::string> CompareSet(const std::string& cluster, int64_t epoch,
                                         const std::string& key, const std::string& expected,
                                         std::string desired);
  // The same, answering through `done` (once, with no lock held) instead of waiting.
  void CompareSet(const std::string& cluster, int64_t epoch, const std::string& key,
                  const std::string& expected, std::string desired,
                  std::function<void(absl::StatusOr<std::string>)> done);

  // Whether every one of `keys` exists (true for none), and how many keys of the space start
  // with `prefix` (all for ""). Never waits. INVALID_ARGUMENT for bad keys or a long prefix.
  absl::StatusOr<CheckResult> Check(const std::string& cluster, int64_t epoch,
                                    const std::vector<std::string>& keys,
                                    const std::string& prefix) const;

  // Removes `key`; true when it existed. A Get for it waits again until it is set again.
  // Answered once durable, like CompareSet.
  absl::StatusOr<bool> Delete(const std::string& cluster, int64_t epoch, const std::string& key);
  // The same, answering through `done` (once, with no lock held) instead of waiting.
  void Delete(const std::string& cluster, int64_t epoch, const std::string& key,
              std::function<void(absl::StatusOr<bool>)> done);

  // Calls `done` exactly once: with the values of `keys` in order once all exist, with
  // DEADLINE_EXCEEDED at `deadline` (capped at now + max_wait), with ABORTED when the space is
  // dropped, or never when Cancel(waiter_id) returned true first. `member_id` is who waits
  // (shown by WaitingKeys; empty: nobody to name). `waiter_id` is the caller's unique handle
  // for Cancel. Bad keys are refused through `done` at once.
  void Get(const std::string& cluster, int64_t epoch, const std::string& member_id,
           std::vector<std::string> keys, absl::Time deadline, uint64_t waiter_id,
           GetCallback done);

  // Withdraws a waiting Get. True when it was still waiting: its callback will not run.
  bool Cancel(uint64_t waiter_id);

  // For hang attribution: each member with a waiting Get in the space, and the keys it waits
  // for that do not exist yet (in the order asked, at most kMaxWaitingKeysPerMember).
  std::map<std::string, std::vector<std::string>> WaitingKeys(const std::string& cluster,
                                                              int64_t epoch) const;

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
    std::string member_id;
    std::vector<std::string> keys;
    absl::Time deadline;
    GetCallback done;
    std::string parked_on;  // the first of `keys` that was missing when last looked at
  };
  // A write queued and not yet durable. Read-modify-writes (Add, CompareSet, Delete) start from
  // it; readers (Get, Check) see only durable values.
  struct Pending {
    std::optional<std::string> value;  // nullopt: a removal
    uint64_t write = 0;                // the newest queued write of the key
  };
  struct Space {
    std::map<std::string, std::string> values;  // durable
    int64_t bytes = 0;
    std::map<std::string, Pending> pending;
    int64_t reserved = 0;                     // bytes the queued writes may add
    std::map<std::string, uint64_t> applied;  // the newest write stored, by key
    std::map<uint64_t, Waiter*> waiters;      // by waiter id, waiting on this space
    // Waiter ids by the key each is parked on: a new key looks only at the waiters parked on
    // it, so a write costs O(its waiters), not O(every waiter of the space).
    std::map<std::string, std::set<uint64_t>> parked;
  };
  using Completion = std::pair<GetCallback, absl::StatusOr<std::vector<std::string>>>;

  absl::Status CheckKey(const std::string& key) const;
  // `keys` of a Get or Check: at most max_keys_per_get, each a valid key.
  absl::Status CheckKeys(const std::vector<std::string>& keys) const;
  absl::Status CheckValue(const char* field, const std::string& value) const;
  // A write staged under the lock, to finish once durable.
  struct Staged {
    SpaceKey id;
    std::string key;
    std::optional<std::string> value;  // nullopt: a removal
    uint64_t write = 0;
    int64_t reserved = 0;
    Durable durable;  // null: nothing to wait for
  };
  // The key's value as the next write starts from: queued, else durable; null when missing.
  static const std::string* Latest(const Space& space, const std::string& key);
  // Checks room for `value` (nullopt: removal) and queues its persisting: a write the space
  // then refused would come back after a restart.
  absl::StatusOr<Staged> StageLocked(const SpaceKey& id, const std::string& key,
                                     std::optional<std::string> value)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Once `staged` is durable, stores it and runs the waiters a new key completes, then calls
  // `done` with the write's status.
  void FinishAsync(Staged staged, std::function<void(absl::Status)> done) ABSL_LOCKS_EXCLUDED(mu_);
  // Stores a write that is durable (`status` OK) or forgets one that is not; returns `status`.
  absl::Status Store(Staged staged, absl::Status status) ABSL_LOCKS_EXCLUDED(mu_);
  // Queues `value` again (nullopt: a removal) when the key has a write queued, so that an answer
  // read from it waits for it; null when the key's latest value is durable already.
  absl::StatusOr<std::optional<Staged>> RestageIfQueuedLocked(const SpaceKey& id,
                                                              const std::string& key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Calls `done` with `answer` once `staged` (if any) is durable, or with its failure.
  template <typename T>
  void AnswerWhenDurable(std::optional<Staged> staged, T answer,
                         std::function<void(absl::StatusOr<T>)> done) ABSL_LOCKS_EXCLUDED(mu_);
  // Add's checks and staging: the write and the counter's new value.
  absl::StatusOr<std::pair<Staged, int64_t>> StageAdd(const std::string& cluster, int64_t epoch,
                                                      const std::string& key, int64_t delta)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Parks waiter `id` on the first of its keys that is missing, or completes it (and forgets
  // it) when all exist.
  void Park(Space& space, uint64_t id, std::vector<Completion>* completions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Looks again at the waiters parked on `key`, which now exists.
  void CollectReady(Space& space, const std::string& key, std::vector<Completion>* completions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes waiter `id` from the space's waiters and its parking place.
  static void Unpark(Space& space, uint64_t id);
  void EraseDeadlineLocked(absl::Time deadline, uint64_t waiter_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static std::vector<std::string> Values(const Space& space, const std::vector<std::string>& keys);
  static void Run(std::vector<Completion>& completions);
  void ExpireLoop();

  const RendezvousLimits limits_;
  const Clock* const clock_;
  const PersistFn persist_;
  const PersistDeleteFn persist_delete_;
  mutable absl::Mutex mu_;
  uint64_t next_write_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<SpaceKey, Space> spaces_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::unique_ptr<Waiter>> waiters_ ABSL_GUARDED_BY(mu_);
  std::multimap<absl::Time, uint64_t> deadlines_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread expirer_;
};

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_RENDEZVOUS_SPACES_H_
