#ifndef SPLITD_DAEMON_GROUP_COMMIT_H_
#define SPLITD_DAEMON_GROUP_COMMIT_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "daemon/store/state_store.h"
#include "splitd/internal/store_records.pb.h"

namespace splitd::daemon {

// Writes the changes of concurrent calls to a StateStore in groups: every change queued while one
// group is being written goes into the next, which is one StateStore::Commit (with --data_dir, one
// append and one fdatasync). Callers queue a change under their own state lock, which fixes its
// place in the order, and then either wait for it (Wait) or leave a callback (OnSettled) and
// return, with no lock held. The first caller that finds no group being written writes every
// queued change itself until none is left (no committer thread: an uncontended change is written
// on its caller's thread). A change is settled only once it and every change queued before it
// are: no caller answers before what it depends on is durable.
//
// Callbacks run with no lock of this class held, in the order of their changes: on the writing
// thread when it came from OnSettled (which holds no locks), else on the class's one callback
// thread, since a caller of Wait may hold locks a callback takes.
//
// When a write fails, or the store refuses a critical change, the state the queued changes were
// computed on is not the store's any more. The failure handler runs (before any change of the
// group is settled, on the writer's thread, with no lock of this class held) and must take that
// state back: the Coordinator reloads its state from the store and fails the changes still
// queued (FailQueued), which were computed on top of the failed ones.
//
// Thread-safe. Lock order: a caller's lock, then this class's.
class GroupCommit {
 public:
  // One queued change.
  class Ticket {
   private:
    friend class GroupCommit;
    std::vector<internal::LogRecord> records_;
    bool critical_ = true;
    bool settled_ = false;
    bool taken_back_ = false;  // failed with its group, or computed on a failed group
    absl::Status status_;
    // OnSettled's and OnState's callbacks, each with whether it gets AwaitState's status: a
    // change's own caller and any number of readers that wait for it.
    std::vector<std::pair<std::function<void(absl::Status)>, bool>> waiting_;
  };
  using TicketPtr = std::shared_ptr<Ticket>;
  using FailureHandler = std::function<void(const absl::Status& status)>;

  // Counts of what the committer has written, for tests and metrics.
  struct Stats {
    uint64_t groups = 0;   // StateStore::Commit calls
    uint64_t changes = 0;  // changes they held
  };

  // `store` must outlive the committer.
  explicit GroupCommit(store::StateStore* store);
  // Runs the callbacks already settled.
  ~GroupCommit();
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  // Set once, before any change is queued.
  void SetFailureHandler(FailureHandler handler) { on_failure_ = std::move(handler); }

  // Queues `records` as one change after every change queued before. `critical`: the caller
  // applied the change to its own state already, so the store refusing it means the two went
  // apart (handled like a failed write); a change that is not critical (a rendezvous key the
  // caller applies only once it is durable) is simply refused.
  TicketPtr Enqueue(std::vector<internal::LogRecord> records, bool critical = true);

  // Blocks until `ticket` is settled, writing queued groups when nobody else is; its status: OK
  // once durable, the store's refusal, or the error of the write that failed it.
  absl::Status Wait(const TicketPtr& ticket);

  // Calls `done` with Wait's status once `ticket` is settled (at once, on this thread, when it
  // is), writing queued groups here when nobody else is. The caller holds no lock.
  void OnSettled(const TicketPtr& ticket, std::function<void(absl::Status)> done);
  // The same with AwaitState's status; a null ticket calls `done` at once.
  void OnState(const TicketPtr& ticket, std::function<void(absl::Status)> done);

  // Blocks until `ticket` (the last change queued when a caller read its state; see Pending) is
  // settled. UNAVAILABLE when that state was taken back by a failed write, OK otherwise (a
  // refused change that was not critical took nothing back). A null ticket is OK at once.
  absl::Status AwaitState(const TicketPtr& ticket);

  // The last change queued and not settled yet, or null: a reader takes it under the same lock
  // as it reads its state and waits for it (AwaitState) before answering.
  TicketPtr Pending() const;

  // Settles every queued change that no writer took yet with `status` (taken back). For the
  // failure handler.
  void FailQueued(const absl::Status& status);

  Stats stats() const;

 private:
  using Callback = std::function<void()>;
  // Writes `group` (no lock held) and settles it; returns its tickets' callbacks.
  std::vector<Callback> WriteGroup(std::vector<TicketPtr> group);
  // Writes queued groups until none is left or another thread writes; runs their callbacks
  // here (`run_callbacks`, briefly releasing mu_) or hands them to the callback thread.
  void Drain(bool run_callbacks) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Attach(const TicketPtr& ticket, std::function<void(absl::Status)> done, bool state_only);
  static absl::Status StateStatus(const Ticket& ticket);
  // Moves the callbacks of `ticket` (settled) into `callbacks`, each bound to its status.
  static void TakeCallbacks(Ticket& ticket, std::vector<Callback>* callbacks);
  void CallbackLoop();

  store::StateStore* const store_;
  FailureHandler on_failure_;

  mutable absl::Mutex mu_;
  absl::CondVar settled_;
  std::deque<TicketPtr> queue_ ABSL_GUARDED_BY(mu_);
  TicketPtr last_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  Stats stats_ ABSL_GUARDED_BY(mu_);
  std::vector<Callback> callbacks_ ABSL_GUARDED_BY(mu_);  // for the callback thread
  absl::CondVar callbacks_ready_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread callback_thread_;
};

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_GROUP_COMMIT_H_
