#include "daemon/event_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "google/protobuf/util/json_util.h"
#include "spdlog/spdlog.h"

namespace splitd::daemon {

EventLog::EventLog(size_t capacity, std::string audit_path)
    : capacity_(capacity == 0 ? 1 : capacity), audit_path_(std::move(audit_path)) {}

EventLog::~EventLog() {
  if (audit_fd_ >= 0) close(audit_fd_);
}

void EventLog::AppendAuditLocked(const std::string& line) {
  if (audit_fd_ < 0) {
    audit_fd_ = open(audit_path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (audit_fd_ < 0) {
      spdlog::warn("cannot open the audit log {}: {}", audit_path_, std::strerror(errno));
      return;
    }
  }
  // One write per line: with O_APPEND a line is never split by another writer's.
  const ssize_t written = write(audit_fd_, line.data(), line.size());
  if (written != static_cast<ssize_t>(line.size())) {
    spdlog::warn("cannot append to the audit log {}: {}", audit_path_,
                 written < 0 ? std::strerror(errno) : "short write");
  }
}

uint64_t EventLog::Append(v1::Event event, absl::Time now) {
  if (!event.has_time()) {
    const int64_t nanos = absl::ToUnixNanos(now);
    event.mutable_time()->set_seconds(nanos / 1000000000);
    event.mutable_time()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
  }
  uint64_t sequence;
  {
    absl::MutexLock lock(&mu_);
    sequence = next_sequence_++;
    event.set_sequence(sequence);
    if (!audit_path_.empty()) {
      std::string line;
      google::protobuf::util::JsonPrintOptions options;
      options.always_print_primitive_fields = false;
      if (google::protobuf::util::MessageToJsonString(event, &line, options).ok()) {
        line.push_back('\n');
        AppendAuditLocked(line);
      }
    }
    events_.push_back(std::move(event));
    while (events_.size() > capacity_) events_.pop_front();
  }
  absl::MutexLock lock(&wake_mu_);
  for (const auto& [id, wake] : subscribers_) wake();
  return sequence;
}

std::optional<v1::Event> EventLog::Next(uint64_t after_sequence, const std::string& cluster) const {
  absl::MutexLock lock(&mu_);
  if (events_.empty()) return std::nullopt;
  const uint64_t first = events_.front().sequence();
  size_t index = after_sequence < first ? 0 : static_cast<size_t>(after_sequence - first + 1);
  for (; index < events_.size(); ++index) {
    if (cluster.empty() || events_[index].cluster() == cluster) return events_[index];
  }
  return std::nullopt;
}

uint64_t EventLog::LastSequence() const {
  absl::MutexLock lock(&mu_);
  return next_sequence_ - 1;
}

uint64_t EventLog::Subscribe(Wake wake) {
  absl::MutexLock lock(&wake_mu_);
  const uint64_t id = next_subscriber_++;
  subscribers_[id] = std::move(wake);
  return id;
}

void EventLog::Unsubscribe(uint64_t id) {
  absl::MutexLock lock(&wake_mu_);
  subscribers_.erase(id);
}

}  // namespace splitd::daemon
