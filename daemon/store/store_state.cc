#include "daemon/store/store_state.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "daemon/store/records.h"

namespace splitd::store {
namespace {

absl::Time FromNanos(int64_t nanos) { return absl::FromUnixNanos(nanos); }

absl::Status UnknownCluster(const std::string& name) {
  return absl::NotFoundError(absl::StrCat("cluster \"", name, "\" not found in the store"));
}

}  // namespace

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

void StoreState::Apply(const internal::LogRecord& record, UndoLog* undo) {
  UndoLog::Entry* entry = nullptr;
  if (undo != nullptr) {
    entry = &undo->entries_.emplace_back();
    entry->change = record.change_case();
    entry->cluster = record.cluster();
  }
  switch (record.change_case()) {
    case internal::LogRecord::kPutCluster:
      ApplyPutCluster(record, entry);
      return;
    case internal::LogRecord::kDeleteCluster: {
      auto node = clusters_.extract(record.cluster());
      if (entry != nullptr) entry->deleted = std::move(node);
      return;
    }
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
    case internal::LogRecord::kPutKey:
      ApplyPutKey(record, entry);
      return;
    case internal::LogRecord::CHANGE_NOT_SET:
      return;
  }
}

void StoreState::ApplyPutCluster(const internal::LogRecord& record, UndoLog::Entry* undo) {
  auto [it, inserted] = clusters_.try_emplace(record.cluster());
  ClusterState& state = it->second;
  const internal::StoredCluster& stored = record.put_cluster();
  const bool new_epoch = state.record.epoch != stored.epoch();
  if (undo != nullptr) {
    if (!inserted) undo->record = std::move(state.record);
    undo->new_epoch = new_epoch;
    if (new_epoch) {
      undo->reports = std::move(state.reports);
      undo->rendezvous = std::move(state.rendezvous);
    }
  }
  if (new_epoch) {
    state.reports.clear();
    state.rendezvous.clear();
  }
  state.record = ClusterRecord();
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
}

void StoreState::ApplyPutKey(const internal::LogRecord& record, UndoLog::Entry* undo) {
  std::map<std::string, std::string>& keys = clusters_[record.cluster()].rendezvous;
  const std::string& key = record.put_key().key();
  auto it = keys.find(key);
  if (undo != nullptr) {
    undo->key = key;
    if (it != keys.end()) undo->value = std::move(it->second);
  }
  if (record.put_key().deleted()) {
    if (it != keys.end()) keys.erase(it);
  } else if (it != keys.end()) {
    it->second = record.put_key().value();
  } else {
    keys.emplace(key, record.put_key().value());
  }
}

void StoreState::Revert(UndoLog* undo) {
  for (auto entry = undo->entries_.rbegin(); entry != undo->entries_.rend(); ++entry) {
    RevertEntry(*entry);
  }
  undo->entries_.clear();
}

void StoreState::RevertEntry(UndoLog::Entry& entry) {
  switch (entry.change) {
    case internal::LogRecord::kPutCluster: {
      if (!entry.record.has_value()) {
        clusters_.erase(entry.cluster);
        return;
      }
      ClusterState& state = clusters_[entry.cluster];
      state.record = std::move(*entry.record);
      if (entry.new_epoch) {
        state.reports = std::move(entry.reports);
        state.rendezvous = std::move(entry.rendezvous);
      }
      return;
    }
    case internal::LogRecord::kDeleteCluster:
      if (!entry.deleted.empty()) clusters_.insert(std::move(entry.deleted));
      return;
    case internal::LogRecord::kAddMember: {
      std::vector<StoredMember>& members = clusters_[entry.cluster].members;
      if (!members.empty()) members.pop_back();
      return;
    }
    case internal::LogRecord::kAddReport: {
      std::vector<v1::ReportGroupStatusRequest>& reports = clusters_[entry.cluster].reports;
      if (!reports.empty()) reports.pop_back();
      return;
    }
    case internal::LogRecord::kPutKey: {
      std::map<std::string, std::string>& keys = clusters_[entry.cluster].rendezvous;
      if (entry.value.has_value()) {
        keys[entry.key] = std::move(*entry.value);
      } else {
        keys.erase(entry.key);
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
