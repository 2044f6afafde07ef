#ifndef SPLITD_DAEMON_STORE_RECORDS_H_
#define SPLITD_DAEMON_STORE_RECORDS_H_

#include <cstdint>
#include <string>

#include "daemon/store/cluster_record.h"
#include "daemon/store/cluster_state.h"
#include "splitd/internal/store_records.pb.h"
#include "splitd/v1/agent_service.pb.h"

namespace splitd::store {

// The LogRecord of each state change, as a StateStore commits it (StateStore::Commit). The
// sequence number is left 0: the store sets it. Pure functions.

// Inserts or replaces the cluster keyed by record.topology.cluster(); a new epoch drops the
// reports and rendezvous keys of older ones.
internal::LogRecord PutClusterRecord(const ClusterRecord& record);
// Removes a cluster with everything about it.
internal::LogRecord DeleteClusterRecord(const std::string& name);
// Admits a member of `cluster`, after the ones before it.
internal::LogRecord AddMemberRecord(const std::string& cluster, const StoredMember& member);
// A report of `epoch`, which must be the cluster's current epoch.
internal::LogRecord AddReportRecord(const std::string& cluster, int64_t epoch,
                                    const v1::ReportGroupStatusRequest& report);
// Sets a rendezvous key of `epoch`, the cluster's current epoch.
internal::LogRecord PutKeyRecord(const std::string& cluster, int64_t epoch, const std::string& key,
                                 const std::string& value);
// Removes a rendezvous key of `epoch` (a missing key stays missing).
internal::LogRecord DeleteKeyRecord(const std::string& cluster, int64_t epoch,
                                    const std::string& key);

}  // namespace splitd::store

#endif  // SPLITD_DAEMON_STORE_RECORDS_H_
