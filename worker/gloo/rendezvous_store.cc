#include "worker/gloo/rendezvous_store.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"
#include "worker/gloo/gloo_errors.h"

namespace splitd::worker {

RendezvousStore::RendezvousStore(RendezvousClient* client, absl::Duration default_timeout,
                                 absl::Duration min_wait)
    : client_(client), default_timeout_(default_timeout), min_wait_(min_wait) {}

void RendezvousStore::set(const std::string& key, const std::vector<char>& data) {
  absl::Status status = client_->Set(key, std::string(data.begin(), data.end()));
  if (!status.ok()) {
    throw GlooStatusError(absl::Status(
        status.code(), absl::StrCat("rendezvous set of ", key, ": ", status.message())));
  }
  // A value this process set may replace one it fetched earlier.
  absl::MutexLock lock(&mu_);
  cache_.erase(key);
}

void RendezvousStore::FetchTogether(const std::vector<std::string>& keys) {
  absl::MutexLock lock(&mu_);
  for (const std::string& key : keys) batch_of_[key] = batches_.size();
  batches_.push_back(keys);
  fetched_.push_back(false);
}

std::vector<char> RendezvousStore::get(const std::string& key) {
  bool batched = false;
  {
    absl::MutexLock lock(&mu_);
    auto batch = batch_of_.find(key);
    batched = batch != batch_of_.end() && !fetched_[batch->second];
  }
  if (batched) Fetch({key}, default_timeout_);
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      std::vector<char> value = std::move(it->second);
      cache_.erase(it);
      return value;
    }
  }
  absl::StatusOr<std::vector<std::string>> values = client_->Get({key}, default_timeout_);
  if (!values.ok()) {
    throw GlooStatusError(
        absl::Status(values.status().code(),
                     absl::StrCat("rendezvous get of ", key, ": ", values.status().message())));
  }
  if (values->size() != 1) {
    throw GlooStatusError(absl::InternalError(
        absl::StrCat("rendezvous get of ", key, " returned ", values->size(), " values, want 1")));
  }
  const std::string& value = values->front();
  return std::vector<char>(value.begin(), value.end());
}

void RendezvousStore::wait(const std::vector<std::string>& keys) { Fetch(keys, default_timeout_); }

void RendezvousStore::wait(const std::vector<std::string>& keys,
                           const std::chrono::milliseconds& timeout) {
  Fetch(keys,
        timeout.count() > 0 ? std::max(absl::FromChrono(timeout), min_wait_) : default_timeout_);
}

void RendezvousStore::Fetch(const std::vector<std::string>& keys, absl::Duration timeout) {
  std::vector<std::string> missing;
  {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> wanted = keys;
    for (const std::string& key : keys) {
      auto batch = batch_of_.find(key);
      if (batch == batch_of_.end() || fetched_[batch->second]) continue;
      fetched_[batch->second] = true;
      for (const std::string& other : batches_[batch->second]) {
        if (other != key) wanted.push_back(other);
      }
    }
    for (const std::string& key : wanted) {
      if (cache_.find(key) == cache_.end() &&
          std::find(missing.begin(), missing.end(), key) == missing.end()) {
        missing.push_back(key);
      }
    }
  }
  if (missing.empty()) return;
  absl::StatusOr<std::vector<std::string>> values = client_->Get(missing, timeout);
  if (!values.ok()) {
    spdlog::debug("rendezvous wait for {} key(s) (first {}) failed: {}", missing.size(),
                  missing.front(), values.status().ToString());
    throw GlooStatusError(absl::Status(
        values.status().code(),
        absl::StrCat("rendezvous wait for ", missing.front(),
                     missing.size() > 1 ? " and others" : "", ": ", values.status().message())));
  }
  if (values->size() != missing.size()) {
    throw GlooStatusError(absl::InternalError(absl::StrCat(
        "rendezvous get of ", missing.size(), " keys returned ", values->size(), " values")));
  }
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < missing.size(); ++i) {
    const std::string& value = (*values)[i];
    cache_[missing[i]] = std::vector<char>(value.begin(), value.end());
  }
}

}  // namespace splitd::worker
