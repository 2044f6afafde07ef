#include "tests/testing/in_memory_rendezvous.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace splitd::testing {

absl::Status InMemoryRendezvous::Set(const std::string& key, const std::string& value) {
  absl::MutexLock lock(&mu_);
  ++set_calls_;
  values_[key] = value;
  return absl::OkStatus();
}

bool InMemoryRendezvous::AllPresentLocked(const std::vector<std::string>& keys) const {
  for (const std::string& key : keys) {
    if (values_.find(key) == values_.end()) return false;
  }
  return true;
}

absl::StatusOr<std::vector<std::string>> InMemoryRendezvous::Get(
    const std::vector<std::string>& keys, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  ++get_calls_;
  auto all_present = [this, &keys]()
                         ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return AllPresentLocked(keys); };
  // AwaitWithTimeout treats an infinite duration as "wait forever".
  if (!mu_.AwaitWithTimeout(absl::Condition(&all_present), timeout)) {
    std::vector<std::string> missing;
    for (const std::string& key : keys) {
      if (values_.find(key) == values_.end()) missing.push_back(key);
    }
    return absl::DeadlineExceededError(absl::StrCat("rendezvous keys not set within ",
                                                    absl::FormatDuration(timeout), ": ",
                                                    absl::StrJoin(missing, ", ")));
  }
  std::vector<std::string> result;
  result.reserve(keys.size());
  for (const std::string& key : keys) result.push_back(values_.at(key));
  return result;
}

absl::StatusOr<int64_t> InMemoryRendezvous::Add(const std::string& key, int64_t delta) {
  absl::MutexLock lock(&mu_);
  ++add_calls_;
  int64_t current = 0;
  auto it = values_.find(key);
  if (it != values_.end() && !absl::SimpleAtoi(it->second, &current)) {
    return absl::InvalidArgumentError(
        absl::StrCat("key ", key, " holds a non-counter value: ", it->second));
  }
  current += delta;
  values_[key] = absl::StrCat(current);
  return current;
}

int64_t InMemoryRendezvous::set_calls() const {
  absl::MutexLock lock(&mu_);
  return set_calls_;
}

int64_t InMemoryRendezvous::get_calls() const {
  absl::MutexLock lock(&mu_);
  return get_calls_;
}

int64_t InMemoryRendezvous::add_calls() const {
  absl::MutexLock lock(&mu_);
  return add_calls_;
}

int64_t InMemoryRendezvous::total_calls() const {
  absl::MutexLock lock(&mu_);
  return set_calls_ + get_calls_ + add_calls_;
}

std::vector<std::string> InMemoryRendezvous::Keys() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> keys;
  keys.reserve(values_.size());
  for (const auto& [key, value] : values_) keys.push_back(key);
  return keys;
}

}  // namespace splitd::testing
