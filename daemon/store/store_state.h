#ifndef SPLITD_DAEMON_STORE_STORE_STATE_H_
#define SPLITD_DAEMON_STORE_STORE_STATE_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "daemon/store/cluster_record.h"
#include "daemon/store/cluster_state.h"
#include "splitd/internal/store_records.pb.h"

namespace splitd::store {

// What StoreState::Revert needs to take back the records applied into it, newest last. Each
// entry holds only what its record replaced (moved out, not copied): a cluster's record, the
// reports and keys a new epoch dropped, a deleted cluster, a key's old value; an added member or
// report is taken back by popping it. Move-only.
class UndoLog {
 public:
  UndoLog() = default;
  UndoLog(UndoLog&&) = default;
  UndoLog& operator=(UndoLog&&) = default;

  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }

 private:
  friend class StoreState;

  struct Entry {
    internal::LogRecord::ChangeCase change = internal::LogRecord::CHANGE_NOT_SET;
    std::string cluster;
    // put_cluster: the record it replaced (none for a new cluster) and, when it started a new
    // epoch, the reports and keys that epoch dropped.
    std::optional<ClusterRecord> record;
    bool new_epoch = false;
    std::vector<v1::ReportGroupStatusRequest> reports;
    std::map<std::string, std::string> rendezvous;
    // delete_cluster: the cluster it removed.
    std::map<std::string, ClusterState>::node_type deleted;
    // put_key: the key and its value before (none when it was missing).
    std::string key;
    std::optional<std::string> value;
  };
  std::vector<Entry> entries_;
};

// The state a sequence of LogRecords describes, kept in memory; shared by every StateStore
// implementation so they agree on what each record means. Thread-compatible.
class StoreState {
 public:
  // OK when `record` applies to the current state (the store's error for it otherwise);
  // changes nothing.
  absl::Status Check(const internal::LogRecord& record) const;
  // Applies a record that Check accepted. With `undo`, also appends to it what Revert needs to
  // take the record back.
  void Apply(const internal::LogRecord& record, UndoLog* undo = nullptr);
  // Takes back the records `undo` holds, newest first, and empties it: the state is exactly as
  // it was before the first of them, provided every record applied after them was taken back
  // first.
  void Revert(UndoLog* undo);

  std::vector<ClusterState> Clusters() const;
  // The fewest records that rebuild the current state (for snapshots), sequence numbers unset.
  std::vector<internal::LogRecord> Records() const;

 private:
  void ApplyPutCluster(const internal::LogRecord& record, UndoLog::Entry* undo);
  void ApplyPutKey(const internal::LogRecord& record, UndoLog::Entry* undo);
  void RevertEntry(UndoLog::Entry& entry);

  std::map<std::string, ClusterState> clusters_;
};

}  // namespace splitd::store

#endif  // SPLITD_DAEMON_STORE_STORE_STATE_H_
