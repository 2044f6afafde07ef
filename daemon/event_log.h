#ifndef SPLITD_DAEMON_EVENT_LOG_H_
#define SPLITD_DAEMON_EVENT_LOG_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "splitd/v1/control_service.pb.h"

namespace splitd::daemon {

// The daemon's recent events (WatchEvents) and its audit trail: every event gets the next
// sequence number, the last `capacity` are retained for watchers that connect later, and each
// is appended as one JSON line to `audit_path` when one is given (with --data_dir). Watchers
// subscribe a wake-up callback and pull with Next(). The audit file is opened once and appended
// to with one write per line (not synced: the store, not the trail, is what a restart needs);
// rotate it by copying and truncating.
//
// Threading: thread-safe. Wake-ups run on the appending thread, one at a time, without the
// event lock held (they may call Next).
class EventLog {
 public:
  explicit EventLog(size_t capacity = 4096, std::string audit_path = "");
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Stamps `event` with the next sequence number (and `now` unless set) and retains it.
  uint64_t Append(v1::Event event, absl::Time now);

  // The first retained event after `after_sequence` of `cluster` (every cluster when empty).
  std::optional<v1::Event> Next(uint64_t after_sequence, const std::string& cluster) const;

  // Sequence number of the last event appended; 0 before any.
  uint64_t LastSequence() const;

  using Wake = std::function<void()>;
  uint64_t Subscribe(Wake wake);
  void Unsubscribe(uint64_t id);

 private:
  const size_t capacity_;
  const std::string audit_path_;
  // Appends `line` to the audit file, opening it on first use.
  void AppendAuditLocked(const std::string& line) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  int audit_fd_ ABSL_GUARDED_BY(mu_) = -1;
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  std::deque<v1::Event> events_ ABSL_GUARDED_BY(mu_);
  // Held while wake-ups run, so that once Unsubscribe returns none runs or will run.
  absl::Mutex wake_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  uint64_t next_subscriber_ ABSL_GUARDED_BY(wake_mu_) = 1;
  std::map<uint64_t, Wake> subscribers_ ABSL_GUARDED_BY(wake_mu_);
};

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_EVENT_LOG_H_
