#include "daemon/store/etcd_state_store.h"

#include <algorithm>
#include <map>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace splitd::store {
namespace {

constexpr size_t kMaxRecordBytes = 16u << 20;

std::string Padded(uint64_t number) { return absl::StrFormat("%020u", number); }

// Errors etcd returns before it proposes a write: the write did not apply.
bool Refused(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return true;
    default:
      return false;
  }
}

etcdserverpb::RequestOp PutOp(const std::string& key, const std::string& value) {
  etcdserverpb::RequestOp op;
  op.mutable_request_put()->set_key(key);
  op.mutable_request_put()->set_value(value);
  return op;
}

etcdserverpb::RequestOp DeleteOp(const std::string& from, const std::string& to) {
  etcdserverpb::RequestOp op;
  op.mutable_request_delete_range()->set_key(from);
  op.mutable_request_delete_range()->set_range_end(to);
  return op;
}

etcdserverpb::RequestOp RangeOp(const std::string& key) {
  etcdserverpb::RequestOp op;
  op.mutable_request_range()->set_key(key);
  return op;
}

// The value of `key` in a read-only transaction's response op, when it exists.
const mvccpb::KeyValue* Found(const etcdserverpb::ResponseOp& op) {
  const auto& kvs = op.response_range().kvs();
  return kvs.empty() ? nullptr : &kvs[0];
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdStateStore>> EtcdStateStore::Open(etcd::EtcdClient* client,
                                                                     EtcdStoreOptions options) {
  if (options.leader_key.empty() || options.term <= 0) {
    return absl::InvalidArgumentError("the etcd store needs a leader key and a term to fence on");
  }
  if (options.piece_bytes == 0) options.piece_bytes = 1 << 20;
  std::unique_ptr<EtcdStateStore> store(new EtcdStateStore(client, std::move(options)));
  ASSIGN_OR_RETURN(etcd::PrefixRead read, client->ReadPrefix(store->StateKey("")));
  absl::MutexLock lock(&store->mu_);
  RETURN_IF_ERROR(store->LoadLocked(read));
  spdlog::info("etcd store under {}: {} keys read at revision {}, last sequence {}",
               store->StateKey(""), read.kvs.size(), read.revision, store->last_sequence_);
  return store;
}

std::string EtcdStateStore::StateKey(const std::string& suffix) const {
  return absl::StrCat(options_.prefix, "state/", suffix);
}

uint64_t EtcdStateStore::LastSequence() const {
  absl::MutexLock lock(&mu_);
  return last_sequence_;
}

bool EtcdStateStore::lost() const {
  absl::MutexLock lock(&mu_);
  return lost_;
}

etcdserverpb::TxnRequest EtcdStateStore::FencedTxn() const {
  etcdserverpb::TxnRequest txn;
  etcdserverpb::Compare* fence = txn.add_compare();
  fence->set_key(options_.leader_key);
  fence->set_target(etcdserverpb::Compare::CREATE);
  fence->set_result(etcdserverpb::Compare::EQUAL);
  fence->set_create_revision(options_.term);
  return txn;
}

absl::Status EtcdStateStore::CheckWritable(const internal::LogRecord& record) const {
  if (const size_t bytes = record.ByteSizeLong(); bytes > kMaxRecordBytes) {
    return absl::InvalidArgumentError(absl::StrCat("record of ", bytes,
                                                   " bytes exceeds the etcd store's limit of ",
                                                   kMaxRecordBytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status EtcdStateStore::LoseLocked(absl::Status why) {
  const absl::Status lost =
      absl::UnavailableError(absl::StrCat("this replica stopped writing to etcd: ", why.message()));
  if (!lost_) {
    lost_ = true;
    spdlog::error("{}", std::string(lost.message()));
    if (options_.on_lost) options_.on_lost(lost);
  }
  return lost;
}

absl::Status EtcdStateStore::WriteResolvedLocked(const std::string& key, const std::string& value,
                                                 const etcdserverpb::TxnRequest& txn) {
  const absl::Time deadline = absl::Now() + options_.resolve_timeout;
  absl::Duration backoff = absl::Milliseconds(50);
  etcdserverpb::TxnRequest read_back;
  *read_back.add_success() = RangeOp(key);
  *read_back.add_success() = RangeOp(options_.leader_key);
  while (true) {
    absl::StatusOr<etcdserverpb::TxnResponse> sent = client_->Txn(txn);
    if (sent.ok() && sent->succeeded()) return absl::OkStatus();
    if (!sent.ok() && Refused(sent.status())) return sent.status();
    // Refused by a compare, or unknown: what is in etcd now decides.
    while (true) {
      absl::StatusOr<etcdserverpb::TxnResponse> now = client_->Txn(read_back);
      if (now.ok() && now->responses_size() == 2) {
        const mvccpb::KeyValue* written = Found(now->responses(0));
        const mvccpb::KeyValue* leader = Found(now->responses(1));
        if (written != nullptr && written->value() == value) return absl::OkStatus();
        if (leader == nullptr || leader->create_revision() != options_.term) {
          return LoseLocked(absl::FailedPreconditionError(
              absl::StrCat("the leader key ", options_.leader_key, " is not this replica's (term ",
                           options_.term, ") any more")));
        }
        if (written != nullptr && sent.ok()) {
          return LoseLocked(
              absl::DataLossError(absl::StrCat(key, " holds an entry this replica did not write")));
        }
        break;  // absent: send again; the absence check keeps it from applying twice
      }
      if (absl::Now() > deadline) {
        return LoseLocked(absl::UnavailableError(
            absl::StrCat("cannot tell whether the write of ", key, " applied within ",
                         absl::FormatDuration(options_.resolve_timeout), ": ",
                         (now.ok() ? sent.status() : now.status()).message())));
      }
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, absl::Milliseconds(500));
    }
    if (absl::Now() > deadline) {
      return LoseLocked(absl::UnavailableError(absl::StrCat(
          "etcd did not take the write of ", key, " within ",
          absl::FormatDuration(options_.resolve_timeout), ": ", sent.status().message())));
    }
  }
}

absl::StatusOr<std::string> EtcdStateStore::EncodeLocked(internal::EtcdEntry entry,
                                                         const internal::EtcdRecords& records,
                                                         const std::string& piece_prefix) {
  entry.set_term(options_.term);
  if (records.ByteSizeLong() <= options_.piece_bytes) {
    *entry.mutable_records() = records.records();
    return entry.SerializeAsString();
  }
  const std::string blob = records.SerializeAsString();
  uint32_t pieces = 0;
  for (size_t offset = 0; offset < blob.size(); offset += options_.piece_bytes, ++pieces) {
    const std::string key = absl::StrFormat("%s%06u", piece_prefix, pieces);
    const std::string piece = blob.substr(offset, options_.piece_bytes);
    // A piece is referenced only once the entry commits: writing it twice is harmless.
    etcdserverpb::TxnRequest txn = FencedTxn();
    *txn.add_success() = PutOp(key, piece);
    RETURN_IF_ERROR(WriteResolvedLocked(key, piece, txn));
  }
  entry.set_pieces(pieces);
  entry.set_bytes(blob.size());
  return entry.SerializeAsString();
}

absl::Status EtcdStateStore::Persist(const std::vector<const internal::LogRecord*>& records) {
  if (lost_) return absl::UnavailableError("this replica stopped writing to etcd");
  internal::EtcdRecords batch;
  for (const internal::LogRecord* record : records) *batch.add_records() = *record;
  internal::EtcdEntry entry;
  entry.set_first_sequence(records.front()->sequence());
  entry.set_last_sequence(records.back()->sequence());
  const std::string key = StateKey("log/" + Padded(entry.first_sequence()));
  ASSIGN_OR_RETURN(
      std::string value,
      EncodeLocked(entry, batch, StateKey("piece/" + Padded(entry.first_sequence()) + "/")));
  etcdserverpb::TxnRequest txn = FencedTxn();
  etcdserverpb::Compare* absent = txn.add_compare();
  absent->set_key(key);
  absent->set_target(etcdserverpb::Compare::VERSION);
  absent->set_result(etcdserverpb::Compare::EQUAL);
  absent->set_version(0);
  *txn.add_success() = PutOp(key, value);
  RETURN_IF_ERROR(WriteResolvedLocked(key, value, txn));

  bytes_since_snapshot_ += std::max<uint64_t>(value.size(), batch.ByteSizeLong());
  if (bytes_since_snapshot_ >= options_.compact_after_bytes &&
      bytes_since_snapshot_ >= compact_retry_at_) {
    if (absl::Status compacted = CompactLocked(); !compacted.ok()) {
      // The entries stay valid; try again after as many bytes once more.
      compact_retry_at_ = bytes_since_snapshot_ + options_.compact_after_bytes;
      spdlog::warn("etcd store snapshot failed: {}", compacted.ToString());
    }
  }
  return absl::OkStatus();
}

absl::Status EtcdStateStore::Compact() {
  absl::MutexLock lock(&mu_);
  if (lost_) return absl::UnavailableError("this replica stopped writing to etcd");
  return CompactLocked();
}

absl::Status EtcdStateStore::CompactLocked() {
  const uint64_t sequence = last_sequence_;
  internal::EtcdRecords records;
  for (internal::LogRecord& record : state_.Records()) *records.add_records() = std::move(record);
  internal::EtcdEntry entry;
  entry.set_first_sequence(1);
  entry.set_last_sequence(sequence);
  const std::string snap_prefix = StateKey("snap/" + Padded(sequence) + "/");
  ASSIGN_OR_RETURN(std::string value, EncodeLocked(entry, records, snap_prefix));
  const std::string key = StateKey("snapshot");
  etcdserverpb::TxnRequest txn = FencedTxn();
  *txn.add_success() = PutOp(key, value);
  // The entries and pieces it holds, and older snapshots' pieces (the key sorts before ours).
  *txn.add_success() = DeleteOp(StateKey("log/"), StateKey("log/" + Padded(sequence + 1)));
  *txn.add_success() = DeleteOp(StateKey("piece/"), StateKey("piece/" + Padded(sequence + 1)));
  *txn.add_success() = DeleteOp(StateKey("snap/"), snap_prefix);
  RETURN_IF_ERROR(WriteResolvedLocked(key, value, txn));
  bytes_since_snapshot_ = 0;
  compact_retry_at_ = 0;
  spdlog::info("etcd store snapshot at sequence {} ({} records)", sequence, records.records_size());
  return absl::OkStatus();
}

absl::Status EtcdStateStore::ReplayLocked(const std::string& key, const internal::EtcdEntry& entry,
                                          const std::string& piece_prefix,
                                          const etcd::PrefixRead& read) {
  internal::EtcdRecords records;
  if (entry.pieces() == 0) {
    *records.mutable_records() = entry.records();
  } else {
    std::string blob;
    auto it = std::lower_bound(
        read.kvs.begin(), read.kvs.end(), piece_prefix,
        [](const mvccpb::KeyValue& kv, const std::string& k) { return kv.key() < k; });
    for (uint32_t i = 0; i < entry.pieces(); ++i, ++it) {
      const std::string piece_key = absl::StrFormat("%s%06u", piece_prefix, i);
      if (it == read.kvs.end() || it->key() != piece_key) {
        return absl::DataLossError(absl::StrCat(key, ": piece ", piece_key, " is missing"));
      }
      blob += it->value();
    }
    if (blob.size() != entry.bytes() || !records.ParseFromString(blob)) {
      return absl::DataLossError(absl::StrCat(key, ": its pieces do not form its records"));
    }
  }
  for (const internal::LogRecord& record : records.records()) {
    if (record.sequence() != 0 && record.sequence() != last_sequence_ + 1) {
      return absl::DataLossError(
          absl::StrCat(key, ": record ", record.sequence(), " follows record ", last_sequence_));
    }
    if (absl::Status status = state_.Check(record); !status.ok()) {
      return absl::DataLossError(
          absl::StrCat(key, ": record ", record.sequence(), " does not apply: ", status.message()));
    }
    state_.Apply(record);
    if (record.sequence() != 0) last_sequence_ = record.sequence();
  }
  return absl::OkStatus();
}

absl::Status EtcdStateStore::LoadLocked(const etcd::PrefixRead& read) {
  const std::string log_prefix = StateKey("log/");
  const std::string snapshot_key = StateKey("snapshot");
  for (const mvccpb::KeyValue& kv : read.kvs) {
    if (kv.key() != snapshot_key) continue;
    internal::EtcdEntry snapshot;
    if (!snapshot.ParseFromString(kv.value())) {
      return absl::DataLossError(absl::StrCat(snapshot_key, " cannot be parsed"));
    }
    RETURN_IF_ERROR(ReplayLocked(snapshot_key, snapshot,
                                 StateKey("snap/" + Padded(snapshot.last_sequence()) + "/"), read));
    last_sequence_ = snapshot.last_sequence();
  }
  for (const mvccpb::KeyValue& kv : read.kvs) {
    if (!absl::StartsWith(kv.key(), log_prefix)) continue;
    internal::EtcdEntry entry;
    if (!entry.ParseFromString(kv.value())) {
      return absl::DataLossError(absl::StrCat(kv.key(), " cannot be parsed"));
    }
    if (entry.last_sequence() <= last_sequence_) continue;
    if (entry.first_sequence() != last_sequence_ + 1) {
      return absl::DataLossError(absl::StrCat(kv.key(), " starts at record ",
                                              entry.first_sequence(), " after record ",
                                              last_sequence_));
    }
    RETURN_IF_ERROR(ReplayLocked(kv.key(), entry,
                                 StateKey("piece/" + Padded(entry.first_sequence()) + "/"), read));
    bytes_since_snapshot_ += kv.value().size();
  }
  return absl::OkStatus();
}

}  // namespace splitd::store
