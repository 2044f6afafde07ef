#include "daemon/stream_registry.h"

namespace splitd::daemon {

StreamRegistry::StreamRegistry() : waker_([this] { WakeLoop(); }) {}

StreamRegistry::~StreamRegistry() {
  Shutdown();
  waker_.join();
}

grpc::Status StreamRegistry::ShuttingDown() {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "daemon is shutting down");
}

bool StreamRegistry::Add(const std::string& group, OpenStream* stream) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return false;
  groups_[group].insert(stream);
  return true;
}

void StreamRegistry::Remove(const std::string& group, OpenStream* stream) {
  absl::MutexLock lock(&mu_);
  auto it = groups_.find(group);
  if (it == groups_.end()) return;
  it->second.erase(stream);
  if (it->second.empty()) groups_.erase(it);
}

std::vector<OpenStream*> StreamRegistry::RefStreamsLocked(const std::string* group) const {
  std::vector<OpenStream*> streams;
  const auto take = [&streams](const std::set<OpenStream*>& members) {
    for (OpenStream* stream : members) {
      stream->Ref();
      streams.push_back(stream);
    }
  };
  if (group == nullptr) {
    for (const auto& [name, members] : groups_) take(members);
  } else if (auto it = groups_.find(*group); it != groups_.end()) {
    take(it->second);
  }
  return streams;
}

void StreamRegistry::WakeGroup(const std::string& group) {
  absl::MutexLock lock(&mu_);
  if (shut_down_ || !queued_.insert(group).second) return;
  to_wake_.push_back(group);
}

void StreamRegistry::WakeLoop() {
  while (true) {
    std::vector<OpenStream*> streams;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return shut_down_ || !to_wake_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (shut_down_) return;
      const std::string group = std::move(to_wake_.front());
      to_wake_.pop_front();
      // Unqueued before the wake-ups, so that a change meanwhile queues the group again.
      queued_.erase(group);
      streams = RefStreamsLocked(&group);
    }
    for (OpenStream* stream : streams) {
      stream->Wake();
      stream->Unref();
    }
  }
}

void StreamRegistry::Shutdown() {
  std::vector<OpenStream*> streams;
  {
    absl::MutexLock lock(&mu_);
    shut_down_ = true;
    streams = RefStreamsLocked(nullptr);
  }
  for (OpenStream* stream : streams) {
    stream->End(ShuttingDown());
    stream->Unref();
  }
}

size_t StreamRegistry::size() const {
  absl::MutexLock lock(&mu_);
  size_t count = 0;
  for (const auto& [name, members] : groups_) count += members.size();
  return count;
}

}  // namespace splitd::daemon
