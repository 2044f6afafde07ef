#include "daemon/rendezvous_spaces.h"

#include <limits>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace splitd::daemon {

RendezvousSpaces::RendezvousSpaces(RendezvousLimits limits, PersistFn persist)
    : limits_(limits), persist_(std::move(persist)) {
  expirer_ = std::thread([this] { ExpireLoop(); });
}

RendezvousSpaces::~RendezvousSpaces() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  expirer_.join();
  std::vector<Completion> completions;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, waiter] : waiters_) {
      completions.emplace_back(std::move(waiter->done),
                               absl::UnavailableError("rendezvous is shutting down"));
    }
    waiters_.clear();
    deadlines_.clear();
    spaces_.clear();
  }
  for (auto& [done, result] : completions) done(std::move(result));
}

absl::Status RendezvousSpaces::CheckKey(const std::string& key) const {
  if (key.empty()) return absl::InvalidArgumentError("key must not be empty");
  if (static_cast<int64_t>(key.size()) > limits_.max_key_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("key must be at most ", limits_.max_key_bytes,
                                                   " bytes, got ", key.size()));
  }
  return absl::OkStatus();
}

absl::Status RendezvousSpaces::Store(Space& space, const std::string& key, std::string value) {
  auto it = space.values.find(key);
  const int64_t old_bytes =
      it == space.values.end() ? 0 : static_cast<int64_t>(key.size() + it->second.size());
  const int64_t new_bytes = static_cast<int64_t>(key.size() + value.size());
  if (space.bytes - old_bytes + new_bytes > limits_.max_space_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "rendezvous space holds ", space.bytes, " bytes; the limit is ", limits_.max_space_bytes));
  }
  space.bytes += new_bytes - old_bytes;
  space.values[key] = std::move(value);
  return absl::OkStatus();
}

std::vector<std::string> RendezvousSpaces::Values(const Space& space,
                                                  const std::vector<std::string>& keys) {
  std::vector<std::string> values;
  values.reserve(keys.size());
  for (const std::string& key : keys) values.push_back(space.values.at(key));
  return values;
}

void RendezvousSpaces::CollectReady(Space& space, std::vector<Completion>* completions) {
  for (auto it = space.waiters.begin(); it != space.waiters.end();) {
    Waiter* waiter = it->second;
    bool all = true;
    for (const std::string& key : waiter->keys) {
      if (space.values.count(key) == 0) {
        all = false;
        break;
      }
    }
    if (!all) {
      ++it;
      continue;
    }
    const uint64_t id = it->first;
    completions->emplace_back(std::move(waiter->done), Values(space, waiter->keys));
    auto range = deadlines_.equal_range(waiter->deadline);
    for (auto d = range.first; d != range.second; ++d) {
      if (d->second == id) {
        deadlines_.erase(d);
        break;
      }
    }
    it = space.waiters.erase(it);
    waiters_.erase(id);
  }
}

absl::Status RendezvousSpaces::Set(const std::string& cluster, int64_t epoch,
                                   const std::string& key, std::string value) {
  if (absl::Status status = CheckKey(key); !status.ok()) return status;
  if (static_cast<int64_t>(value.size()) > limits_.max_value_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("value must be at most ",
                                                   limits_.max_value_bytes, " bytes, got ",
                                                   value.size()));
  }
  std::vector<Completion> completions;
  {
    absl::MutexLock lock(&mu_);
    Space& space = spaces_[{cluster, epoch}];
    if (persist_) {
      if (absl::Status status = persist_(cluster, epoch, key, value); !status.ok()) return status;
    }
    if (absl::Status status = Store(space, key, std::move(value)); !status.ok()) return status;
    CollectReady(space, &completions);
  }
  for (auto& [done, result] : completions) done(std::move(result));
  return absl::OkStatus();
}

void RendezvousSpaces::Restore(const std::string& cluster, int64_t epoch,
                               const std::map<std::string, std::string>& keys) {
  absl::MutexLock lock(&mu_);
  Space& space = spaces_[{cluster, epoch}];
  for (const auto& [key, value] : keys) Store(space, key, value).IgnoreError();
}

absl::StatusOr<int64_t> RendezvousSpaces::Add(const std::string& cluster, int64_t epoch,
                                              const std::string& key, int64_t delta) {
  if (absl::Status status = CheckKey(key); !status.ok()) return status;
  std::vector<Completion> completions;
  int64_t result = 0;
  {
    absl::MutexLock lock(&mu_);
    Space& space = spaces_[{cluster, epoch}];
    auto it = space.values.find(key);
    int64_t current = 0;
    if (it != space.values.end() && !absl::SimpleAtoi(it->second, &current)) {
      return absl::FailedPreconditionError(
          absl::StrCat("key \"", key, "\" holds a value that is not a counter"));
    }
    if ((delta > 0 && current > std::numeric_limits<int64_t>::max() - delta) ||
        (delta < 0 && current < std::numeric_limits<int64_t>::min() - delta)) {
      return absl::OutOfRangeError(absl::StrCat("counter \"", key, "\" would overflow"));
    }
    result = current + delta;
    if (persist_) {
      if (absl::Status status = persist_(cluster, epoch, key, absl::StrCat(result));
          !status.ok()) {
        return status;
      }
    }
    if (absl::Status status = Store(space, key, absl::StrCat(result)); !status.ok()) return status;
    CollectReady(space, &completions);
  }
  for (auto& [done, value] : completions) done(std::move(value));
  return result;
}

void RendezvousSpaces::Get(const std::string& cluster, int64_t epoch,
                           std::vector<std::string> keys, absl::Time deadline,
                           uint64_t waiter_id, GetCallback done) {
  if (keys.empty()) {
    done(absl::InvalidArgumentError("keys must not be empty"));
    return;
  }
  if (static_cast<int64_t>(keys.size()) > limits_.max_keys_per_get) {
    done(absl::InvalidArgumentError(absl::StrCat("keys must have at most ",
                                                 limits_.max_keys_per_get, " entries, got ",
                                                 keys.size())));
    return;
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    if (absl::Status status = CheckKey(keys[i]); !status.ok()) {
      done(absl::InvalidArgumentError(absl::StrCat("keys[", i, "]: ", status.message())));
      return;
    }
  }
  deadline = std::min(deadline, absl::Now() + limits_.max_wait);
  std::vector<Completion> completions;
  {
    absl::MutexLock lock(&mu_);
    Space& space = spaces_[{cluster, epoch}];
    auto waiter = std::make_unique<Waiter>();
    waiter->space = {cluster, epoch};
    waiter->keys = std::move(keys);
    waiter->deadline = deadline;
    waiter->done = std::move(done);
    space.waiters[waiter_id] = waiter.get();
    deadlines_.emplace(deadline, waiter_id);
    waiters_[waiter_id] = std::move(waiter);
    CollectReady(space, &completions);
  }
  for (auto& [callback, result] : completions) callback(std::move(result));
}

bool RendezvousSpaces::Cancel(uint64_t waiter_id) {
  absl::MutexLock lock(&mu_);
  auto it = waiters_.find(waiter_id);
  if (it == waiters_.end()) return false;
  Waiter* waiter = it->second.get();
  auto space = spaces_.find(waiter->space);
  if (space != spaces_.end()) space->second.waiters.erase(waiter_id);
  auto range = deadlines_.equal_range(waiter->deadline);
  for (auto d = range.first; d != range.second; ++d) {
    if (d->second == waiter_id) {
      deadlines_.erase(d);
      break;
    }
  }
  waiters_.erase(it);
  return true;
}

void RendezvousSpaces::Drop(const std::string& cluster, int64_t keep_epoch) {
  std::vector<Completion> completions;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = spaces_.lower_bound({cluster, std::numeric_limits<int64_t>::min()});
         it != spaces_.end() && it->first.first == cluster && it->first.second < keep_epoch;) {
      for (const auto& [id, waiter] : it->second.waiters) {
        completions.emplace_back(
            std::move(waiter->done),
            absl::AbortedError(absl::StrCat("epoch ", it->first.second, " of cluster \"", cluster,
                                            "\" is over; its rendezvous keys are dropped")));
        auto range = deadlines_.equal_range(waiter->deadline);
        for (auto d = range.first; d != range.second; ++d) {
          if (d->second == id) {
            deadlines_.erase(d);
            break;
          }
        }
        waiters_.erase(id);
      }
      it = spaces_.erase(it);
    }
  }
  for (auto& [done, result] : completions) done(std::move(result));
}

int64_t RendezvousSpaces::KeyCount(const std::string& cluster, int64_t epoch) const {
  absl::MutexLock lock(&mu_);
  auto it = spaces_.find({cluster, epoch});
  return it == spaces_.end() ? 0 : static_cast<int64_t>(it->second.values.size());
}

int64_t RendezvousSpaces::TotalKeyCount() const {
  absl::MutexLock lock(&mu_);
  int64_t keys = 0;
  for (const auto& [space_key, space] : spaces_) keys += static_cast<int64_t>(space.values.size());
  return keys;
}

void RendezvousSpaces::ExpireLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    const absl::Time next =
        deadlines_.empty() ? absl::Now() + absl::Milliseconds(200) : deadlines_.begin()->first;
    // Wakes at the next deadline, or every 200 ms to notice new, earlier deadlines and stop.
    const absl::Time until = std::min(next, absl::Now() + absl::Milliseconds(200));
    mu_.AwaitWithDeadline(absl::Condition(&stopping_), until);
    if (stopping_) break;
    std::vector<Completion> completions;
    const absl::Time now = absl::Now();
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      const uint64_t id = deadlines_.begin()->second;
      deadlines_.erase(deadlines_.begin());
      auto it = waiters_.find(id);
      if (it == waiters_.end()) continue;
      Waiter* waiter = it->second.get();
      std::string missing;
      auto space = spaces_.find(waiter->space);
      for (const std::string& key : waiter->keys) {
        if (space == spaces_.end() || space->second.values.count(key) == 0) {
          missing = key;
          break;
        }
      }
      completions.emplace_back(
          std::move(waiter->done),
          absl::DeadlineExceededError(absl::StrCat(
              "rendezvous keys not set before the deadline (first missing: \"", missing, "\")")));
      if (space != spaces_.end()) space->second.waiters.erase(id);
      waiters_.erase(it);
    }
    if (completions.empty()) continue;
    mu_.Unlock();
    for (auto& [done, result] : completions) done(std::move(result));
    mu_.Lock();
  }
}

}  // namespace splitd::daemon
