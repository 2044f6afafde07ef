#ifndef SPLITD_DAEMON_STORE_ETCD_STATE_STORE_H_
#define SPLITD_DAEMON_STORE_ETCD_STATE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/etcd/etcd_client.h"
#include "daemon/store/record_store.h"
#include "etcd/etcdserverpb/rpc.pb.h"

namespace splitd::store {

struct EtcdStoreOptions {
  // Every key of the state lies under prefix + "state/" (docs/store-format.md).
  std::string prefix = "/splitd/";
  // Fencing: every write compares this key's create revision with `term` in the same
  // transaction, so a replica that is not the leader any more cannot write.
  std::string leader_key;
  int64_t term = 0;
  // Once this many bytes were written since the last snapshot, the next commit also writes a
  // snapshot and deletes the entries it holds.
  uint64_t compact_after_bytes = 8 << 20;
  // Largest etcd value written; larger entries are split into pieces of this size (etcd takes
  // requests of up to 1.5 MiB by default).
  size_t piece_bytes = 1 << 20;
  // How long a write whose outcome is unknown (etcd unreachable, no etcd leader) is read back
  // and sent again before the store gives up.
  absl::Duration resolve_timeout = absl::Seconds(10);
  // Called once, when the store stops taking writes: its fenced write was refused (another
  // replica leads), or etcd could not tell whether a write applied within resolve_timeout.
  std::function<void(const absl::Status&)> on_lost;
};

// The daemon's StateStore in etcd, for replicas of which one leads (--etcd_endpoints): the
// leader keeps the state in memory, as every RecordStore does, and each commit is one etcd
// transaction that adds one entry (the commit's records) under prefix/state/log/, fenced on the
// leader key's create revision and on the entry's key being absent. An entry over piece_bytes is
// written as pieces first and referenced by the transaction that commits it. A write whose
// outcome is unknown is resolved by reading the entry back, and sent again only while it is
// absent (the absence check makes a late first attempt and the second one exclusive). Past
// compact_after_bytes a snapshot of the state replaces the entries, in one transaction. Open reads
// everything at one revision and replays it; a gap or a record that does not apply is DATA_LOSS.
// Thread-safe.
class EtcdStateStore : public RecordStore {
 public:
  static absl::StatusOr<std::unique_ptr<EtcdStateStore>> Open(etcd::EtcdClient* client,
                                                              EtcdStoreOptions options);

  // Writes a snapshot now (commits do this on their own past compact_after_bytes).
  absl::Status Compact();
  // Sequence number of the last record (0 for an empty store).
  uint64_t LastSequence() const;
  // Whether the store stopped taking writes (on_lost was called).
  bool lost() const;

 protected:
  absl::Status Persist(const std::vector<const internal::LogRecord*>& records) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckWritable(const internal::LogRecord& record) const override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

 private:
  EtcdStateStore(etcd::EtcdClient* client, EtcdStoreOptions options)
      : client_(client), options_(std::move(options)) {}

  std::string StateKey(const std::string& suffix) const;
  etcdserverpb::TxnRequest FencedTxn() const;
  // The value of an entry key for `entry` holding `records`: inline, or after writing the pieces
  // under `piece_prefix`.
  absl::StatusOr<std::string> EncodeLocked(internal::EtcdEntry entry,
                                           const internal::EtcdRecords& records,
                                           const std::string& piece_prefix)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends `txn`, which writes `value` to `key`, until it is known to have applied (OK), was
  // refused for good (that error), or the store is lost (UNAVAILABLE).
  absl::Status WriteResolvedLocked(const std::string& key, const std::string& value,
                                   const etcdserverpb::TxnRequest& txn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status LoseLocked(absl::Status why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status LoadLocked(const etcd::PrefixRead& read) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ReplayLocked(const std::string& key, const internal::EtcdEntry& entry,
                            const std::string& piece_prefix, const etcd::PrefixRead& read)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CompactLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  etcd::EtcdClient* const client_;
  const EtcdStoreOptions options_;
  bool lost_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t bytes_since_snapshot_ ABSL_GUARDED_BY(mu_) = 0;
  // After a failed snapshot, the byte count at which to try again.
  uint64_t compact_retry_at_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace splitd::store

#endif  // SPLITD_DAEMON_STORE_ETCD_STATE_STORE_H_
