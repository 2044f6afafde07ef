#include "daemon/store/records.h"

#include "absl/time/time.h"

namespace splitd::store {
namespace {

int64_t Nanos(absl::Time time) { return absl::ToUnixNanos(time); }

}  // namespace

internal::LogRecord PutClusterRecord(const ClusterRecord& record) {
  internal::LogRecord out;
  out.set_cluster(record.topology.cluster());
  out.set_epoch(record.epoch);
  internal::StoredCluster* stored = out.mutable_put_cluster();
  *stored->mutable_topology() = record.topology;
  stored->set_epoch(record.epoch);
  stored->set_create_unix_nanos(Nanos(record.create_time));
  stored->set_update_unix_nanos(Nanos(record.update_time));
  if (!record.plan_topology.cluster().empty())
    *stored->mutable_plan_topology() = record.plan_topology;
  for (const std::string& id : record.assignment) stored->add_assignment(id);
  for (const std::string& id : record.excluded) stored->add_excluded(id);
  stored->set_reason(record.reason);
  stored->set_shrinks_epoch(record.shrinks_epoch);
  for (int64_t rank : record.previous_ranks) stored->add_previous_ranks(rank);
  stored->set_join_token_sha256(record.join_token_sha256);
  return out;
}

internal::LogRecord DeleteClusterRecord(const std::string& name) {
  internal::LogRecord out;
  out.set_cluster(name);
  out.set_delete_cluster(true);
  return out;
}

internal::LogRecord AddMemberRecord(const std::string& cluster, const StoredMember& member) {
  internal::LogRecord out;
  out.set_cluster(cluster);
  internal::StoredMember* stored = out.mutable_add_member();
  *stored->mutable_identity() = member.identity;
  *stored->mutable_capabilities() = member.capabilities;
  stored->set_session_token_sha256(member.session_token_sha256);
  stored->set_registered_unix_nanos(Nanos(member.registered));
  return out;
}

internal::LogRecord AddReportRecord(const std::string& cluster, int64_t epoch,
                                    const v1::ReportGroupStatusRequest& report) {
  internal::LogRecord out;
  out.set_cluster(cluster);
  out.set_epoch(epoch);
  *out.mutable_add_report() = report;
  return out;
}

internal::LogRecord PutKeyRecord(const std::string& cluster, int64_t epoch, const std::string& key,
                                 const std::string& value) {
  internal::LogRecord out;
  out.set_cluster(cluster);
  out.set_epoch(epoch);
  out.mutable_put_key()->set_key(key);
  out.mutable_put_key()->set_value(value);
  return out;
}

internal::LogRecord DeleteKeyRecord(const std::string& cluster, int64_t epoch,
                                    const std::string& key) {
  internal::LogRecord out;
  out.set_cluster(cluster);
  out.set_epoch(epoch);
  out.mutable_put_key()->set_key(key);
  out.mutable_put_key()->set_deleted(true);
  return out;
}

}  // namespace splitd::store
