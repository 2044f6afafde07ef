#ifndef SPLITD_DAEMON_STORE_LOG_STATE_STORE_H_
#define SPLITD_DAEMON_STORE_LOG_STATE_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/store/record_store.h"

namespace splitd::store {

struct LogStoreOptions {
  // Once the log grows past this many bytes, the next commit also writes a snapshot and starts
  // an empty log.
  uint64_t compact_after_bytes = 4 << 20;
  // fdatasync every append (and fsync snapshots and the directory). Only tests turn it off:
  // without it a write is acknowledged before it is durable.
  bool sync = true;
};

// The durable, embedded StateStore under the daemon's --data_dir: an append-only, checksummed
// log of LogRecords plus a snapshot the log is compacted into (docs/store-format.md). A commit
// appends the records of all its accepted changes with one write and one fdatasync, and returns
// only once they are on disk; a failed append leaves neither state nor log changed. Open recovers
// from a crash at any point: a torn last record is dropped, and any other damage is reported
// (DATA_LOSS) rather than silently dropped. One process at a time (an flock on `dir/LOCK`).
// Thread-safe.
class LogStateStore : public RecordStore {
 public:
  // Opens (creating when missing) the store in `dir` and replays it. DATA_LOSS for damaged
  // files, FAILED_PRECONDITION for files of another format or version, or a store that
  // another process holds open.
  static absl::StatusOr<std::unique_ptr<LogStateStore>> Open(const std::string& dir,
                                                             LogStoreOptions options = {});

  ~LogStateStore() override;
  LogStateStore(const LogStateStore&) = delete;
  LogStateStore& operator=(const LogStateStore&) = delete;

  // Writes a snapshot of the current state and starts an empty log now (commits do this on
  // their own past compact_after_bytes). On failure the old files stay valid.
  absl::Status Compact();

  // Sequence number of the last record written (0 for a store never written).
  uint64_t LastSequence() const;

 protected:
  // Appends the frames of `records` with one write and one fdatasync; compacts afterwards once
  // the log is past compact_after_bytes.
  absl::Status Persist(const std::vector<const internal::LogRecord*>& records) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Refuses a record over the log's size limit.
  absl::Status CheckWritable(const internal::LogRecord& record) const override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

 private:
  LogStateStore(std::string dir, LogStoreOptions options);

  absl::Status LoadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ReplaySnapshotLocked(const std::string& data, uint64_t* snapshot_sequence)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Replays the log after the snapshot; sets *good_size to the length of its intact prefix.
  absl::Status ReplayLogLocked(const std::string& data, uint64_t snapshot_sequence,
                               uint64_t* good_size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Check + Apply of a record read back; a record that does not apply is DATA_LOSS.
  absl::Status ApplyReplayedLocked(const internal::LogRecord& record, const std::string& path,
                                   uint64_t offset) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rewrites a store read in an older format in the current one (a compaction).
  absl::Status UpgradeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Snapshot of state_ (as of last_sequence_), then an empty log.
  absl::Status CompactLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string dir_;
  const std::string log_path_;
  const std::string snapshot_path_;
  const LogStoreOptions options_;

  int lock_fd_ = -1;
  int log_fd_ ABSL_GUARDED_BY(mu_) = -1;
  // Bytes of the log that hold whole, acknowledged records: where the next append goes.
  uint64_t log_size_ ABSL_GUARDED_BY(mu_) = 0;
  // A failed append could not be cut off the log yet; done before the next append.
  bool log_needs_truncate_ ABSL_GUARDED_BY(mu_) = false;
  // A compaction renamed a new log in place but could not sync the directory yet.
  bool dir_needs_sync_ ABSL_GUARDED_BY(mu_) = false;
  // A file read on open was in an older format: rewrite the store before taking writes.
  bool older_format_ ABSL_GUARDED_BY(mu_) = false;
  // After a failed compaction, the log size at which to try again.
  uint64_t compact_retry_at_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace splitd::store

#endif  // SPLITD_DAEMON_STORE_LOG_STATE_STORE_H_
