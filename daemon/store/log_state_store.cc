#include "daemon/store/log_state_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/posix_file.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace splitd::store {
namespace {

// File layout (docs/store-format.md). Integers are little-endian.
constexpr absl::string_view kMagic = "SPLITD-STORE\n";
// Format 2 stores a digest of each session token; format 1 stored the token itself and is read,
// then rewritten as format 2 on open.
constexpr uint32_t kFormatVersion = 2;
constexpr uint32_t kOldestReadableVersion = 1;
constexpr uint32_t kLogKind = 1;
constexpr uint32_t kSnapshotKind = 2;
// magic, u32 version, u32 kind.
constexpr size_t kHeaderBytes = 13 + 4 + 4;
// kHeaderBytes, u64 last sequence, u64 record count, u32 CRC-32 of everything before it.
constexpr size_t kSnapshotHeaderBytes = kHeaderBytes + 8 + 8 + 4;
// u32 payload length, u32 CRC-32 of the payload.
constexpr size_t kFrameHeaderBytes = 8;
constexpr uint32_t kMaxRecordBytes = 64u << 20;

static_assert(kMagic.size() == 13, "header layout");

// A failed read or write of the store: RESOURCE_EXHAUSTED when the disk is full (ENOSPC, EDQUOT;
// EFBIG, which PosixError gives as OUT_OF_RANGE), UNAVAILABLE otherwise, so that callers see the
// store's contract whatever the errno.
absl::Status StoreError(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kResourceExhausted:
      return status;
    case absl::StatusCode::kOutOfRange:
      return absl::ResourceExhaustedError(status.message());
    default:
      return absl::UnavailableError(status.message());
  }
}

absl::Status ErrnoError(int err, absl::string_view action, const std::string& path) {
  return StoreError(PosixError(err, action, path));
}

void PutU32(std::string* out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

void PutU64(std::string* out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

uint32_t GetU32(const char* p) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) value |= uint32_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return value;
}

uint64_t GetU64(const char* p) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value |= uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return value;
}

uint32_t Crc32(const char* data, size_t size) {
  // Callers bound size by kMaxRecordBytes or a header, far below uInt's range.
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, reinterpret_cast<const Bytef*>(data), static_cast<uInt>(size));
  return static_cast<uint32_t>(crc);
}

// Appends one framed record to *out.
absl::Status AppendFrame(const internal::LogRecord& record, std::string* out) {
  std::string payload;
  if (!record.SerializeToString(&payload)) {
    return absl::InvalidArgumentError("record does not serialize");
  }
  if (payload.size() > kMaxRecordBytes) {
    return absl::InvalidArgumentError(absl::StrCat("record of ", payload.size(),
                                                   " bytes exceeds the store's limit of ",
                                                   kMaxRecordBytes, " bytes"));
  }
  PutU32(out, static_cast<uint32_t>(payload.size()));
  PutU32(out, Crc32(payload.data(), payload.size()));
  out->append(payload);
  return absl::OkStatus();
}

std::string FileHeader(uint32_t kind) {
  std::string header(kMagic);
  PutU32(&header, kFormatVersion);
  PutU32(&header, kind);
  return header;
}

// Checks magic, version and kind, and returns the version; the header's own length has been
// checked where it varies.
absl::StatusOr<uint32_t> CheckHeader(const std::string& data, uint32_t kind, size_t header_bytes,
                                     const std::string& path) {
  const size_t magic_bytes = std::min(data.size(), kMagic.size());
  if (absl::string_view(data.data(), magic_bytes) != kMagic.substr(0, magic_bytes)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a splitd store file (wrong magic)"));
  }
  if (data.size() < header_bytes) {
    return absl::DataLossError(absl::StrCat(path, " is truncated: ", data.size(),
                                            " bytes, shorter than its ", header_bytes,
                                            "-byte header"));
  }
  const uint32_t version = GetU32(data.data() + kMagic.size());
  if (version < kOldestReadableVersion || version > kFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " has format version ", version, "; this splitd reads versions ",
                     kOldestReadableVersion, " to ", kFormatVersion));
  }
  const uint32_t found_kind = GetU32(data.data() + kMagic.size() + 4);
  if (found_kind != kind) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " holds a store file of kind ", found_kind, ", expected ", kind,
                     kind == kLogKind ? " (a log)" : " (a snapshot)"));
  }
  return version;
}

// The whole file, or nullopt when there is none.
absl::StatusOr<std::optional<std::string>> ReadFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return ErrnoError(errno, "open", path);
  }
  std::string data;
  char buffer[1 << 16];
  while (true) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      close(fd);
      return ErrnoError(err, "read", path);
    }
    if (n == 0) break;
    data.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return std::optional<std::string>(std::move(data));
}

int WriteAll(int fd, uint64_t offset, absl::string_view data) {
  return WriteAllAt(fd, static_cast<off_t>(offset), data);
}

absl::Status SyncDir(const std::string& dir) { return StoreError(SyncDirectory(dir)); }

// Writes `contents` to `path`.tmp, fsyncs it and renames it over `path`; returns the new
// file, open read-write. The caller syncs the directory to make the rename durable.
absl::StatusOr<int> WriteAndRename(const std::string& path, absl::string_view contents, bool sync) {
  ReplaceFileOptions options;
  options.sync = sync;
  options.sync_directory = false;
  options.unique_temp = false;
  options.keep_open = true;
  absl::StatusOr<int> fd = ReplaceFile(path, contents, options);
  if (!fd.ok()) return StoreError(fd.status());
  return *fd;
}

absl::Status MakeDirs(const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError("store directory must not be empty");
  for (size_t pos = dir.find('/', 1);; pos = dir.find('/', pos + 1)) {
    const std::string prefix = dir.substr(0, pos);
    if (!prefix.empty() && mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoError(errno, "create directory", prefix);
    }
    if (pos == std::string::npos) break;
  }
  struct stat info;
  if (stat(dir.c_str(), &info) != 0) return ErrnoError(errno, "stat", dir);
  if (!S_ISDIR(info.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(dir, " is not a directory"));
  }
  return absl::OkStatus();
}

bool AllZero(const std::string& data, size_t from) {
  return std::all_of(data.begin() + static_cast<std::ptrdiff_t>(from), data.end(),
                     [](char c) { return c == 0; });
}

}  // namespace

LogStateStore::LogStateStore(std::string dir, LogStoreOptions options)
    : dir_(std::move(dir)),
      log_path_(dir_ + "/log"),
      snapshot_path_(dir_ + "/snapshot"),
      options_(options) {}

LogStateStore::~LogStateStore() {
  absl::MutexLock lock(&mu_);
  if (log_fd_ >= 0) close(log_fd_);
  if (lock_fd_ >= 0) close(lock_fd_);  // releases the flock
}

absl::StatusOr<std::unique_ptr<LogStateStore>> LogStateStore::Open(const std::string& dir,
                                                                   LogStoreOptions options) {
  RETURN_IF_ERROR(MakeDirs(dir));
  std::unique_ptr<LogStateStore> store(new LogStateStore(dir, options));
  const std::string lock_path = dir + "/LOCK";
  store->lock_fd_ = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (store->lock_fd_ < 0) return ErrnoError(errno, "open", lock_path);
  if (flock(store->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrCat("store ", dir, " is in use by another process (", lock_path, " is locked)"));
    }
    return ErrnoError(errno, "lock", lock_path);
  }
  absl::MutexLock lock(&store->mu_);
  RETURN_IF_ERROR(store->LoadLocked());
  if (store->older_format_) RETURN_IF_ERROR(store->UpgradeLocked());
  return store;
}

absl::Status LogStateStore::UpgradeLocked() {
  // The state in memory holds digests only; a snapshot of it and an empty log replace the
  // older files, and with them the session tokens they held in clear.
  RETURN_IF_ERROR(CompactLocked());
  older_format_ = false;
  spdlog::info("store {}: rewritten in format {} (session tokens are kept as digests)", dir_,
               kFormatVersion);
  return absl::OkStatus();
}

absl::Status LogStateStore::LoadLocked() {
  // Leftovers of a compaction that crashed before its rename; the files they were to replace
  // are intact.
  for (const std::string& tmp : {snapshot_path_ + ".tmp", log_path_ + ".tmp"}) {
    if (unlink(tmp.c_str()) != 0 && errno != ENOENT) return ErrnoError(errno, "remove", tmp);
  }

  uint64_t snapshot_sequence = 0;
  ASSIGN_OR_RETURN(std::optional<std::string> snapshot, ReadFile(snapshot_path_));
  if (snapshot.has_value()) {
    RETURN_IF_ERROR(ReplaySnapshotLocked(*snapshot, &snapshot_sequence));
  }
  last_sequence_ = snapshot_sequence;

  ASSIGN_OR_RETURN(std::optional<std::string> log, ReadFile(log_path_));
  if (!log.has_value()) {
    ASSIGN_OR_RETURN(log_fd_, WriteAndRename(log_path_, FileHeader(kLogKind), options_.sync));
    log_size_ = kHeaderBytes;
    if (options_.sync) RETURN_IF_ERROR(SyncDir(dir_));
    return absl::OkStatus();
  }
  uint64_t good_size = 0;
  RETURN_IF_ERROR(ReplayLogLocked(*log, snapshot_sequence, &good_size));
  log_fd_ = open(log_path_.c_str(), O_RDWR | O_CLOEXEC);
  if (log_fd_ < 0) return ErrnoError(errno, "open", log_path_);
  if (good_size < log->size()) {
    spdlog::warn(
        "store log {}: dropping a torn last record at byte offset {} ({} bytes); "
        "recovered up to sequence {}",
        log_path_, good_size, log->size() - good_size, last_sequence_);
    if (ftruncate(log_fd_, static_cast<off_t>(good_size)) != 0) {
      return ErrnoError(errno, "truncate", log_path_);
    }
    if (options_.sync && fdatasync(log_fd_) != 0) return ErrnoError(errno, "fdatasync", log_path_);
  }
  log_size_ = good_size;
  return absl::OkStatus();
}

absl::Status LogStateStore::ApplyReplayedLocked(const internal::LogRecord& record,
                                                const std::string& path, uint64_t offset) {
  if (absl::Status status = state_.Check(record); !status.ok()) {
    return absl::DataLossError(absl::StrCat(path, ": record at offset ", offset, " (sequence ",
                                            record.sequence(),
                                            ") does not apply: ", status.message()));
  }
  state_.Apply(record);
  return absl::OkStatus();
}

absl::Status LogStateStore::ReplaySnapshotLocked(const std::string& data,
                                                 uint64_t* snapshot_sequence) {
  ASSIGN_OR_RETURN(const uint32_t version,
                   CheckHeader(data, kSnapshotKind, kSnapshotHeaderBytes, snapshot_path_));
  if (version < kFormatVersion) older_format_ = true;
  const char* header = data.data();
  const uint64_t sequence = GetU64(header + kHeaderBytes);
  const uint64_t count = GetU64(header + kHeaderBytes + 8);
  const uint32_t header_crc = GetU32(header + kHeaderBytes + 16);
  if (Crc32(header, kHeaderBytes + 16) != header_crc) {
    return absl::DataLossError(
        absl::StrCat(snapshot_path_, ": header at offset 0 fails its checksum"));
  }
  uint64_t offset = kSnapshotHeaderBytes;
  for (uint64_t i = 0; i < count; ++i) {
    if (data.size() - offset < kFrameHeaderBytes) {
      return absl::DataLossError(absl::StrCat(snapshot_path_, ": truncated at offset ", offset,
                                              " after ", i, " of ", count, " records"));
    }
    const uint32_t length = GetU32(data.data() + offset);
    const uint32_t crc = GetU32(data.data() + offset + 4);
    if (length > kMaxRecordBytes || data.size() - offset - kFrameHeaderBytes < length) {
      return absl::DataLossError(absl::StrCat(snapshot_path_, ": record at offset ", offset,
                                              " has a bad length ", length));
    }
    const char* payload = data.data() + offset + kFrameHeaderBytes;
    if (Crc32(payload, length) != crc) {
      return absl::DataLossError(
          absl::StrCat(snapshot_path_, ": record at offset ", offset, " fails its checksum"));
    }
    internal::LogRecord record;
    if (!record.ParseFromArray(payload, static_cast<int>(length))) {
      return absl::DataLossError(absl::StrCat(snapshot_path_, ": record at offset ", offset,
                                              " passes its checksum but does not parse"));
    }
    RETURN_IF_ERROR(ApplyReplayedLocked(record, snapshot_path_, offset));
    offset += kFrameHeaderBytes + length;
  }
  if (offset != data.size()) {
    return absl::DataLossError(absl::StrCat(snapshot_path_, ": ", data.size() - offset,
                                            " unexpected bytes at offset ", offset, " after its ",
                                            count, " records"));
  }
  *snapshot_sequence = sequence;
  return absl::OkStatus();
}

absl::Status LogStateStore::ReplayLogLocked(const std::string& data, uint64_t snapshot_sequence,
                                            uint64_t* good_size) {
  ASSIGN_OR_RETURN(const uint32_t version, CheckHeader(data, kLogKind, kHeaderBytes, log_path_));
  if (version < kFormatVersion) older_format_ = true;
  uint64_t previous = 0;  // sequence of the record before, applied or skipped
  uint64_t offset = kHeaderBytes;
  while (offset < data.size()) {
    const uint64_t left = data.size() - offset;
    // A torn tail: the last append stopped part-way (or its blocks never reached the disk).
    if (left < kFrameHeaderBytes) break;
    const uint32_t length = GetU32(data.data() + offset);
    const uint32_t crc = GetU32(data.data() + offset + 4);
    if (left - kFrameHeaderBytes < length) break;
    const uint64_t end = offset + kFrameHeaderBytes + length;
    if (length > kMaxRecordBytes) {
      return absl::DataLossError(absl::StrCat(log_path_, ": record at offset ", offset,
                                              " has a bad length ", length, " (limit ",
                                              kMaxRecordBytes, ")"));
    }
    const char* payload = data.data() + offset + kFrameHeaderBytes;
    // A record is never empty (it names a cluster), so a zero length is damage too.
    if (length == 0 || Crc32(payload, length) != crc) {
      if (end == data.size() || AllZero(data, offset)) break;
      return absl::DataLossError(absl::StrCat(
          log_path_, ": record at offset ", offset, " is corrupt (",
          length == 0 ? "zero length" : "checksum mismatch", ") and ", data.size() - end,
          " more bytes follow it; refusing to drop acknowledged records"));
    }
    internal::LogRecord record;
    if (!record.ParseFromArray(payload, static_cast<int>(length))) {
      return absl::DataLossError(absl::StrCat(log_path_, ": record at offset ", offset,
                                              " passes its checksum but does not parse"));
    }
    const uint64_t sequence = record.sequence();
    if (sequence <= previous) {
      return absl::DataLossError(absl::StrCat(log_path_, ": record at offset ", offset,
                                              " has sequence ", sequence, " after ", previous));
    }
    previous = sequence;
    // Records the snapshot already holds (left by a crash between writing it and starting the
    // new log) are skipped; the rest must follow it without a gap.
    if (sequence > snapshot_sequence) {
      if (sequence != last_sequence_ + 1) {
        return absl::DataLossError(absl::StrCat(log_path_, ": record at offset ", offset,
                                                " has sequence ", sequence, ", expected ",
                                                last_sequence_ + 1, " (records are missing)"));
      }
      RETURN_IF_ERROR(ApplyReplayedLocked(record, log_path_, offset));
      last_sequence_ = sequence;
    }
    offset = end;
  }
  *good_size = offset;
  return absl::OkStatus();
}

absl::Status LogStateStore::CheckWritable(const internal::LogRecord& record) const {
  if (const size_t bytes = record.ByteSizeLong(); bytes > kMaxRecordBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "record of ", bytes, " bytes exceeds the store's limit of ", kMaxRecordBytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status LogStateStore::Persist(const std::vector<const internal::LogRecord*>& records) {
  std::string frames;
  for (const internal::LogRecord* record : records) RETURN_IF_ERROR(AppendFrame(*record, &frames));
  if (log_needs_truncate_) {
    if (ftruncate(log_fd_, static_cast<off_t>(log_size_)) != 0) {
      return ErrnoError(errno, "truncate", log_path_);
    }
    log_needs_truncate_ = false;
  }
  if (dir_needs_sync_) {
    RETURN_IF_ERROR(SyncDir(dir_));
    dir_needs_sync_ = false;
  }
  absl::Status status;
  if (const int err = WriteAll(log_fd_, log_size_, frames); err != 0) {
    status = ErrnoError(err, "append to", log_path_);
  } else if (options_.sync && fdatasync(log_fd_) != 0) {
    status = ErrnoError(errno, "fdatasync", log_path_);
  }
  if (!status.ok()) {
    // No partial record may stay behind a later append: that would read as a corrupt middle.
    if (ftruncate(log_fd_, static_cast<off_t>(log_size_)) != 0) log_needs_truncate_ = true;
    return status;
  }
  log_size_ += frames.size();

  if (log_size_ > options_.compact_after_bytes && log_size_ >= compact_retry_at_) {
    // The records are durable in the current log whatever happens here. The state already holds
    // them, so the snapshot covers them and the new log starts empty.
    if (absl::Status compacted = CompactLocked(); !compacted.ok()) {
      compact_retry_at_ = log_size_ + std::max<uint64_t>(options_.compact_after_bytes / 4, 1);
      spdlog::warn("store {}: compaction failed, retrying once the log reaches {} bytes: {}", dir_,
                   compact_retry_at_, compacted.ToString());
    } else {
      compact_retry_at_ = 0;
    }
  }
  return absl::OkStatus();
}

absl::Status LogStateStore::CompactLocked() {
  std::vector<internal::LogRecord> records = state_.Records();
  std::string snapshot = FileHeader(kSnapshotKind);
  PutU64(&snapshot, last_sequence_);
  PutU64(&snapshot, records.size());
  PutU32(&snapshot, Crc32(snapshot.data(), snapshot.size()));
  for (const internal::LogRecord& record : records) RETURN_IF_ERROR(AppendFrame(record, &snapshot));
  ASSIGN_OR_RETURN(const int snapshot_fd, WriteAndRename(snapshot_path_, snapshot, options_.sync));
  close(snapshot_fd);
  // The new log may replace the old one only once the snapshot is durably in place.
  if (options_.sync) RETURN_IF_ERROR(SyncDir(dir_));
  // From here a crash leaves the new snapshot beside the old log, whose records up to
  // last_sequence_ are skipped on open.

  const std::string log = FileHeader(kLogKind);
  ASSIGN_OR_RETURN(const int log_fd, WriteAndRename(log_path_, log, options_.sync));
  close(log_fd_);
  log_fd_ = log_fd;
  log_size_ = log.size();
  log_needs_truncate_ = false;
  if (options_.sync) {
    if (absl::Status synced = SyncDir(dir_); !synced.ok()) {
      // The new log is in place and complete; its name is durable once the directory is.
      dir_needs_sync_ = true;
      return synced;
    }
  }
  spdlog::info("store {}: compacted to a snapshot of {} records at sequence {} ({} bytes)", dir_,
               records.size(), last_sequence_, snapshot.size());
  return absl::OkStatus();
}

absl::Status LogStateStore::Compact() {
  absl::MutexLock lock(&mu_);
  return CompactLocked();
}

uint64_t LogStateStore::LastSequence() const {
  absl::MutexLock lock(&mu_);
  return last_sequence_;
}

}  // namespace splitd::store
