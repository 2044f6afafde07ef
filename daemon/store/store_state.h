#ifndef SPLITD_DAEMON_STORE_STORE_STATE_H_
#define SPLITD_DAEMON_STORE_STORE_STATE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "daemon/store/state_store.h"
#include "splitd/internal/store_records.pb.h"

namespace splitd::store {

// The state a sequence of LogRecords describes, kept in memory; shared by every StateStore
// implementation so they agree on what each record means. Thread-compatible.
class StoreState {
 public:
  // Records for each StateStore write (sequence left 0 for the caller to set).
  static internal::LogRecord PutClusterRecord(const ClusterRecord& record);
  static internal::LogRecord DeleteClusterRecord(const std::string& name);
  static internal::LogRecord AddMemberRecord(const std::string& cluster,
                                             const StoredMember& member);
  static internal::LogRecord AddReportRecord(const std::string& cluster, int64_t epoch,
                                             const v1::ReportGroupStatusRequest& report);
  static internal::LogRecord PutKeyRecord(const std::string& cluster, int64_t epoch,
                                          const std::string& key, const std::string& value);
  static internal::LogRecord DeleteKeyRecord(const std::string& cluster, int64_t epoch,
                                             const std::string& key);

  // OK when `record` applies to the current state (the store's error for it otherwise);
  // changes nothing.
  absl::Status Check(const internal::LogRecord& record) const;
  // Applies a record that Check accepted.
  void Apply(const internal::LogRecord& record);

  std::vector<ClusterState> Clusters() const;
  // The fewest records that rebuild the current state (for snapshots), sequence numbers unset.
  std::vector<internal::LogRecord> Records() const;

 private:
  std::map<std::string, ClusterState> clusters_;
};

}  // namespace splitd::store

#endif  // SPLITD_DAEMON_STORE_STORE_STATE_H_
