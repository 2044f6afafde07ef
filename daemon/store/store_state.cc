#include "daemon/store/store_state.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"

namespace splitd::store {
namespace {

int64_t Nanos(absl::Time time) { return absl::ToUnixNanos(time); }
absl::Time FromNanos(int64_t nanos) { return absl::FromUnixNanos(nanos); }

absl::Status UnknownCluster(const std::string& name) {
  return absl::NotFoundError(absl::StrCat("cluster \"", name, "\" not found in the store"));
}

}  // namespace

internal::LogRecord StoreState::PutClusterRecord(const ClusterRecord& record) {
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

internal::LogRecord StoreState::DeleteClusterRecord(const std::string& name) {
  internal::LogRecord out;
  out.set_cluster(name);
  out.set_delete_cluster(true);
  return out;
}

internal::LogRecord StoreState::AddMemberRecord(const std::string& cluster,
                                                const StoredMember& member) {
  internal::LogRecord out;
  out.set_cluster(cluster);
  internal::StoredMember* stored = out.mutable_add_member();
  *stored->mutable_identity() = member.identity;
  *stored->mutable_capabilities() = member.capabilities;
  stored->set_session_token_sha256(member.session_token_sha256);
  stored->set_registered_unix_nanos(Nanos(member.registered));
  return out;
}

internal::LogRecord StoreState::AddReportRecord(const std::string& cluster, int64_t epoch,
                                                const v1::ReportGroupStatusRequest& report) {
  internal::LogRecord out;
  out.set_cluster(cluster);
  out.set_epoch(epoch);
  *out.mutable_add_report() = report;
  return out;
}

internal::LogRecord StoreState::PutKeyRecord(const std::string& cluster, int64_t epoch,
                                             const std::string& key, const std::string& value) {
  internal::LogRecord out;
  out.set_cluster(cluster);
  out.set_epoch(epoch);
  out.mutable_put_key()->set_key(key);
  out.mutable_put_key()->set_value(value);
  return out;
}

internal::LogRecord StoreState::DeleteKeyRecord(const std::string& cluster, int64_t epoch,
                                                const std::string& key) {
  internal::LogRecord out;
  out.set_cluster(cluster);
  out.set_epoch(epoch);
  out.mutable_put_key()->set_key(key);
  out.mutable_put_key()->set_deleted(true);
  return out;
}

absl::Status StoreState::Check(const internal::LogRecord& record) const {
  if (record.cluster().empty()) {
    return absl::InvalidArgumentError("record without a cluster name");
  }
  auto it = clusters_.find(record.cluster());
  switch (record.change_case()) {
    case internal::LogRecord::kPutCluster:
      if (record.put_cluster().epoch() < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("cluster \"", record.cluster(), "\": epoch must be >= 1"));
      }
      return absl::OkStatus();
    case internal::LogRecord::kDeleteCluster:
    case internal::LogRecord::kAddMember:
      if (it == clusters_.end()) return UnknownCluster(record.cluster());
      return absl::OkStatus();
    case internal::LogRecord::kAddReport:
    case internal::LogRecord::kPutKey:
      if (it == clusters_.end()) return UnknownCluster(record.cluster());
      if (record.epoch() != it->second.record.epoch) {
        return absl::FailedPreconditionError(
            absl::StrCat("cluster \"", record.cluster(), "\" is at epoch ", it->second.record.epoch,
                         ", not ", record.epoch()));
      }
      return absl::OkStatus();
    case internal::LogRecord::CHANGE_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("record without a change");
}

void StoreState::Apply(const internal::LogRecord& record) {
  switch (record.change_case()) {
    case internal::LogRecord::kPutCluster: {
      ClusterState& state = clusters_[record.cluster()];
      const internal::StoredCluster& stored = record.put_cluster();
      if (state.record.epoch != stored.epoch()) {
        state.reports.clear();
        state.rendezvous.clear();
      }
      state.record.topology = stored.topology();
      state.record.epoch = stored.epoch();
      state.record.create_time = FromNanos(stored.create_unix_nanos());
      state.record.update_time = FromNanos(stored.update_unix_nanos());
      state.record.plan_topology = stored.plan_topology();
      state.record.assignment.assign(stored.assignment().begin(), stored.assignment().end());
      state.record.excluded.assign(stored.excluded().begin(), stored.excluded().end());
      state.record.reason = stored.reason();
      state.record.shrinks_epoch = stored.shrinks_epoch();
      state.record.previous_ranks.assign(stored.previous_ranks().begin(),
                                         stored.previous_ranks().end());
      state.record.join_token_sha256 = stored.join_token_sha256();
      return;
    }
    case internal::LogRecord::kDeleteCluster:
      clusters_.erase(record.cluster());
      return;
    case internal::LogRecord::kAddMember: {
      const internal::StoredMember& stored = record.add_member();
      StoredMember member;
      member.identity = stored.identity();
      member.capabilities = stored.capabilities();
      // A format-1 record holds the token in clear; only its digest is kept.
      member.session_token_sha256 =
          stored.session_token_sha256().empty() && !stored.session_token().empty()
              ? Sha256::Hex(stored.session_token())
              : stored.session_token_sha256();
      member.registered = FromNanos(stored.registered_unix_nanos());
      clusters_[record.cluster()].members.push_back(std::move(member));
      return;
    }
    case internal::LogRecord::kAddReport:
      clusters_[record.cluster()].reports.push_back(record.add_report());
      return;
    case internal::LogRecord::kPutKey: {
      std::map<std::string, std::string>& keys = clusters_[record.cluster()].rendezvous;
      if (record.put_key().deleted()) {
        keys.erase(record.put_key().key());
      } else {
        keys[record.put_key().key()] = record.put_key().value();
      }
      return;
    }
    case internal::LogRecord::CHANGE_NOT_SET:
      return;
  }
}

std::vector<ClusterState> StoreState::Clusters() const {
  std::vector<ClusterState> out;
  out.reserve(clusters_.size());
  for (const auto& [name, state] : clusters_) out.push_back(state);
  return out;
}

std::vector<internal::LogRecord> StoreState::Records() const {
  std::vector<internal::LogRecord> out;
  for (const auto& [name, state] : clusters_) {
    out.push_back(PutClusterRecord(state.record));
    for (const StoredMember& member : state.members) out.push_back(AddMemberRecord(name, member));
    for (const v1::ReportGroupStatusRequest& report : state.reports) {
      out.push_back(AddReportRecord(name, state.record.epoch, report));
    }
    for (const auto& [key, value] : state.rendezvous) {
      out.push_back(PutKeyRecord(name, state.record.epoch, key, value));
    }
  }
  return out;
}

}  // namespace splitd::store
