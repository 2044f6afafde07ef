#include "daemon/rendezvous_spaces.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/await_callback.h"
#include "common/status_macros.h"

namespace splitd::daemon {
namespace {

const Clock& SystemClock() {
  static const RealClock* const clock = new RealClock();
  return *clock;
}

int64_t Bytes(const std::string& key, size_t value_size) {
  return static_cast<int64_t>(key.size() + value_size);
}

}  // namespace

RendezvousSpaces::RendezvousSpaces(RendezvousLimits limits, PersistFn persist,
                                   PersistDeleteFn persist_delete, const Clock* clock)
    : limits_(limits),
      clock_(clock != nullptr ? clock : &SystemClock()),
      persist_(std::move(persist)),
      persist_delete_(std::move(persist_delete)) {
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
  Run(completions);
}

void RendezvousSpaces::Run(std::vector<Completion>& completions) {
  for (auto& [done, result] : completions) done(std::move(result));
}

absl::Status RendezvousSpaces::CheckKey(const std::string& key) const {
  if (key.empty()) return absl::InvalidArgumentError("key must not be empty");
  if (static_cast<int64_t>(key.size()) > limits_.max_key_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("key must be at most ", limits_.max_key_bytes, " bytes, got ", key.size()));
  }
  return absl::OkStatus();
}

absl::Status RendezvousSpaces::CheckKeys(const std::vector<std::string>& keys) const {
  if (static_cast<int64_t>(keys.size()) > limits_.max_keys_per_get) {
    return absl::InvalidArgumentError(absl::StrCat(
        "keys must have at most ", limits_.max_keys_per_get, " entries, got ", keys.size()));
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    if (absl::Status status = CheckKey(keys[i]); !status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("keys[", i, "]: ", status.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status RendezvousSpaces::CheckValue(const char* field, const std::string& value) const {
  if (static_cast<int64_t>(value.size()) > limits_.max_value_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " must be at most ", limits_.max_value_bytes, " bytes, got ", value.size()));
  }
  return absl::OkStatus();
}

const std::string* RendezvousSpaces::Latest(const Space& space, const std::string& key) {
  if (auto pending = space.pending.find(key); pending != space.pending.end()) {
    return pending->second.value.has_value() ? &*pending->second.value : nullptr;
  }
  auto it = space.values.find(key);
  return it == space.values.end() ? nullptr : &it->second;
}

absl::StatusOr<RendezvousSpaces::Staged> RendezvousSpaces::StageLocked(
    const SpaceKey& id, const std::string& key, std::optional<std::string> value) {
  Space& space = spaces_[id];
  int64_t reserved = 0;
  if (value.has_value()) {
    const std::string* latest = Latest(space, key);
    const int64_t growth =
        Bytes(key, value->size()) - (latest == nullptr ? 0 : Bytes(key, latest->size()));
    if (growth > 0 && space.bytes + space.reserved + growth > limits_.max_space_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("rendezvous space holds ", space.bytes + space.reserved,
                       " bytes; the limit is ", limits_.max_space_bytes));
    }
    reserved = std::max<int64_t>(growth, 0);
  }
  Staged staged{id, key, std::move(value), next_write_++, reserved, nullptr};
  if (staged.value.has_value() && persist_) {
    staged.durable = persist_(id.first, id.second, key, *staged.value);
  } else if (!staged.value.has_value() && persist_delete_) {
    staged.durable = persist_delete_(id.first, id.second, key);
  }
  space.reserved += reserved;
  space.pending[key] = Pending{staged.value, staged.write};
  return staged;
}

void RendezvousSpaces::FinishAsync(Staged staged, std::function<void(absl::Status)> done) {
  if (!staged.durable) {
    done(Store(std::move(staged), absl::OkStatus()));
    return;
  }
  Durable durable = std::move(staged.durable);
  auto shared = std::make_shared<Staged>(std::move(staged));
  durable([this, shared, done = std::move(done)](absl::Status status) {
    done(Store(std::move(*shared), std::move(status)));
  });
}

absl::Status RendezvousSpaces::Store(Staged staged, absl::Status status) {
  std::vector<Completion> completions;
  {
    absl::MutexLock lock(&mu_);
    auto found = spaces_.find(staged.id);
    if (found == spaces_.end()) return status;  // dropped meanwhile: its epoch is over
    Space& space = found->second;
    space.reserved -= staged.reserved;
    auto pending = space.pending.find(staged.key);
    if (pending != space.pending.end() && pending->second.write == staged.write) {
      space.pending.erase(pending);
    }
    // Writes are durable in the order they were queued, but may finish here in another: the
    // newest durable write of a key wins.
    uint64_t& applied = space.applied[staged.key];
    if (status.ok() && staged.write > applied) {
      applied = staged.write;
      auto it = space.values.find(staged.key);
      const int64_t old_bytes = it == space.values.end() ? 0 : Bytes(staged.key, it->second.size());
      if (!staged.value.has_value()) {
        if (it != space.values.end()) space.values.erase(it);
        space.bytes -= old_bytes;
      } else {
        space.bytes += Bytes(staged.key, staged.value->size()) - old_bytes;
        if (it != space.values.end()) {
          it->second = std::move(*staged.value);
        } else {
          space.values.emplace(staged.key, std::move(*staged.value));
          // Only a key that did not exist can complete a waiter: one waiting on an existing key
          // is waiting for another.
          CollectReady(space, staged.key, &completions);
        }
      }
    }
  }
  Run(completions);
  return status;
}

std::vector<std::string> RendezvousSpaces::Values(const Space& space,
                                                  const std::vector<std::string>& keys) {
  std::vector<std::string> values;
  values.reserve(keys.size());
  for (const std::string& key : keys) values.push_back(space.values.at(key));
  return values;
}

void RendezvousSpaces::Park(Space& space, uint64_t id, std::vector<Completion>* completions) {
  Waiter* waiter = space.waiters.at(id);
  for (const std::string& key : waiter->keys) {
    if (space.values.count(key) == 0) {
      waiter->parked_on = key;
      space.parked[key].insert(id);
      return;
    }
  }
  completions->emplace_back(std::move(waiter->done), Values(space, waiter->keys));
  EraseDeadlineLocked(waiter->deadline, id);
  space.waiters.erase(id);
  waiters_.erase(id);
}

void RendezvousSpaces::CollectReady(Space& space, const std::string& key,
                                    std::vector<Completion>* completions) {
  auto parked = space.parked.find(key);
  if (parked == space.parked.end()) return;
  const std::set<uint64_t> ids = std::move(parked->second);
  space.parked.erase(parked);
  for (uint64_t id : ids) Park(space, id, completions);
}

void RendezvousSpaces::Unpark(Space& space, uint64_t id) {
  auto waiter = space.waiters.find(id);
  if (waiter == space.waiters.end()) return;
  auto parked = space.parked.find(waiter->second->parked_on);
  if (parked != space.parked.end()) {
    parked->second.erase(id);
    if (parked->second.empty()) space.parked.erase(parked);
  }
  space.waiters.erase(waiter);
}

void RendezvousSpaces::EraseDeadlineLocked(absl::Time deadline, uint64_t waiter_id) {
  auto range = deadlines_.equal_range(deadline);
  for (auto d = range.first; d != range.second; ++d) {
    if (d->second == waiter_id) {
      deadlines_.erase(d);
      return;
    }
  }
}

absl::Status RendezvousSpaces::Set(const std::string& cluster, int64_t epoch,
                                   const std::string& key, std::string value) {
  return AwaitCallback<absl::Status>(
      [&](auto done) { Set(cluster, epoch, key, std::move(value), std::move(done)); });
}

void RendezvousSpaces::Set(const std::string& cluster, int64_t epoch, const std::string& key,
                           std::string value, std::function<void(absl::Status)> done) {
  absl::StatusOr<Staged> staged = [&]() -> absl::StatusOr<Staged> {
    RETURN_IF_ERROR(CheckKey(key));
    RETURN_IF_ERROR(CheckValue("value", value));
    absl::MutexLock lock(&mu_);
    return StageLocked({cluster, epoch}, key, std::move(value));
  }();
  if (!staged.ok()) {
    done(staged.status());
    return;
  }
  FinishAsync(*std::move(staged), std::move(done));
}

void RendezvousSpaces::Restore(const std::string& cluster, int64_t epoch,
                               const std::map<std::string, std::string>& keys) {
  absl::MutexLock lock(&mu_);
  Space& space = spaces_[{cluster, epoch}];
  for (const auto& [key, value] : keys) {
    // The store held what the space once accepted; only smaller limits since can refuse it.
    auto it = space.values.find(key);
    const int64_t growth =
        Bytes(key, value.size()) - (it == space.values.end() ? 0 : Bytes(key, it->second.size()));
    if (space.bytes + growth > limits_.max_space_bytes) continue;
    space.bytes += growth;
    space.values[key] = value;
  }
}

absl::StatusOr<int64_t> RendezvousSpaces::Add(const std::string& cluster, int64_t epoch,
                                              const std::string& key, int64_t delta) {
  return AwaitCallback<absl::StatusOr<int64_t>>(
      [&](auto done) { Add(cluster, epoch, key, delta, std::move(done)); });
}

void RendezvousSpaces::Add(const std::string& cluster, int64_t epoch, const std::string& key,
                           int64_t delta, std::function<void(absl::StatusOr<int64_t>)> done) {
  absl::StatusOr<std::pair<Staged, int64_t>> staged = StageAdd(cluster, epoch, key, delta);
  if (!staged.ok()) {
    done(staged.status());
    return;
  }
  AnswerWhenDurable<int64_t>(std::move(staged->first), staged->second, std::move(done));
}

absl::StatusOr<std::pair<RendezvousSpaces::Staged, int64_t>> RendezvousSpaces::StageAdd(
    const std::string& cluster, int64_t epoch, const std::string& key, int64_t delta) {
  RETURN_IF_ERROR(CheckKey(key));
  int64_t result = 0;
  Staged staged;
  {
    absl::MutexLock lock(&mu_);
    const std::string* latest = Latest(spaces_[{cluster, epoch}], key);
    int64_t current = 0;
    if (latest != nullptr && !absl::SimpleAtoi(*latest, &current)) {
      return absl::FailedPreconditionError(
          absl::StrCat("key \"", key, "\" holds a value that is not a counter"));
    }
    if ((delta > 0 && current > std::numeric_limits<int64_t>::max() - delta) ||
        (delta < 0 && current < std::numeric_limits<int64_t>::min() - delta)) {
      return absl::OutOfRangeError(absl::StrCat("counter \"", key, "\" would overflow"));
    }
    result = current + delta;
    ASSIGN_OR_RETURN(staged, StageLocked({cluster, epoch}, key, absl::StrCat(result)));
  }
  return std::make_pair(std::move(staged), result);
}

absl::StatusOr<std::string> RendezvousSpaces::CompareSet(const std::string& cluster, int64_t epoch,
                                                         const std::string& key,
                                                         const std::string& expected,
                                                         std::string desired) {
  return AwaitCallback<absl::StatusOr<std::string>>([&](auto done) {
    CompareSet(cluster, epoch, key, expected, std::move(desired), std::move(done));
  });
}

void RendezvousSpaces::CompareSet(const std::string& cluster, int64_t epoch, const std::string& key,
                                  const std::string& expected, std::string desired,
                                  std::function<void(absl::StatusOr<std::string>)> done) {
  std::string after;
  absl::StatusOr<std::optional<Staged>> staged = [&]() -> absl::StatusOr<std::optional<Staged>> {
    RETURN_IF_ERROR(CheckKey(key));
    RETURN_IF_ERROR(CheckValue("expected", expected));
    RETURN_IF_ERROR(CheckValue("desired", desired));
    absl::MutexLock lock(&mu_);
    const std::string* current = nullptr;
    if (auto space = spaces_.find({cluster, epoch}); space != spaces_.end()) {
      current = Latest(space->second, key);
    }
    if (current == nullptr ? !expected.empty() : *current != expected) {
      // No swap. For a missing key torch answers `expected`, which its callers compare with
      // what they asked for to learn that the swap did not happen.
      after = current == nullptr ? expected : *current;
      return RestageIfQueuedLocked({cluster, epoch}, key);
    }
    after = desired;
    return StageLocked({cluster, epoch}, key, std::move(desired));
  }();
  if (!staged.ok()) {
    done(staged.status());
    return;
  }
  AnswerWhenDurable(*std::move(staged), std::move(after), std::move(done));
}

absl::StatusOr<std::optional<RendezvousSpaces::Staged>> RendezvousSpaces::RestageIfQueuedLocked(
    const SpaceKey& id, const std::string& key) {
  auto space = spaces_.find(id);
  if (space == spaces_.end()) return std::nullopt;
  auto pending = space->second.pending.find(key);
  if (pending == space->second.pending.end()) return std::nullopt;
  std::optional<std::string> value = pending->second.value;
  return StageLocked(id, key, std::move(value));
}

template <typename T>
void RendezvousSpaces::AnswerWhenDurable(std::optional<Staged> staged, T answer,
                                         std::function<void(absl::StatusOr<T>)> done) {
  if (!staged.has_value()) {
    done(std::move(answer));
    return;
  }
  FinishAsync(*std::move(staged),
              [answer = std::move(answer), done = std::move(done)](absl::Status status) mutable {
                if (status.ok()) {
                  done(std::move(answer));
                } else {
                  done(std::move(status));
                }
              });
}

absl::StatusOr<RendezvousSpaces::CheckResult> RendezvousSpaces::Check(
    const std::string& cluster, int64_t epoch, const std::vector<std::string>& keys,
    const std::string& prefix) const {
  RETURN_IF_ERROR(CheckKeys(keys));
  if (static_cast<int64_t>(prefix.size()) > limits_.max_key_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("prefix must be at most ", limits_.max_key_bytes,
                                                   " bytes, got ", prefix.size()));
  }
  CheckResult result;
  absl::MutexLock lock(&mu_);
  auto space = spaces_.find({cluster, epoch});
  if (space == spaces_.end()) {
    result.all_exist = keys.empty();
    return result;
  }
  const std::map<std::string, std::string>& values = space->second.values;
  result.all_exist = std::all_of(keys.begin(), keys.end(),
                                 [&](const std::string& key) { return values.count(key) > 0; });
  if (prefix.empty()) {
    result.num_keys = static_cast<int64_t>(values.size());
  } else {
    // Keys with the prefix are adjacent in the ordered map, starting at the prefix itself.
    for (auto it = values.lower_bound(prefix);
         it != values.end() && absl::StartsWith(it->first, prefix); ++it) {
      ++result.num_keys;
    }
  }
  return result;
}

absl::StatusOr<bool> RendezvousSpaces::Delete(const std::string& cluster, int64_t epoch,
                                              const std::string& key) {
  return AwaitCallback<absl::StatusOr<bool>>(
      [&](auto done) { Delete(cluster, epoch, key, std::move(done)); });
}

void RendezvousSpaces::Delete(const std::string& cluster, int64_t epoch, const std::string& key,
                              std::function<void(absl::StatusOr<bool>)> done) {
  bool existed = false;
  absl::StatusOr<std::optional<Staged>> staged = [&]() -> absl::StatusOr<std::optional<Staged>> {
    RETURN_IF_ERROR(CheckKey(key));
    if (persist_ && !persist_delete_) {
      return absl::FailedPreconditionError(
          "rendezvous keys cannot be deleted here: this daemon cannot make a deletion durable");
    }
    absl::MutexLock lock(&mu_);
    auto space = spaces_.find({cluster, epoch});
    if (space == spaces_.end()) return std::nullopt;
    // Missing, perhaps through a removal still queued: answered once that is durable.
    if (Latest(space->second, key) == nullptr) return RestageIfQueuedLocked({cluster, epoch}, key);
    existed = true;
    return StageLocked({cluster, epoch}, key, std::nullopt);
  }();
  if (!staged.ok()) {
    done(staged.status());
    return;
  }
  AnswerWhenDurable(*std::move(staged), existed, std::move(done));
}

void RendezvousSpaces::Get(const std::string& cluster, int64_t epoch, const std::string& member_id,
                           std::vector<std::string> keys, absl::Time deadline, uint64_t waiter_id,
                           GetCallback done) {
  if (keys.empty()) {
    done(absl::InvalidArgumentError("keys must not be empty"));
    return;
  }
  if (absl::Status status = CheckKeys(keys); !status.ok()) {
    done(std::move(status));
    return;
  }
  deadline = std::min(deadline, clock_->Now() + limits_.max_wait);
  std::vector<Completion> completions;
  {
    absl::MutexLock lock(&mu_);
    Space& space = spaces_[{cluster, epoch}];
    auto waiter = std::make_unique<Waiter>();
    waiter->space = {cluster, epoch};
    waiter->member_id = member_id;
    waiter->keys = std::move(keys);
    waiter->deadline = deadline;
    waiter->done = std::move(done);
    space.waiters[waiter_id] = waiter.get();
    deadlines_.emplace(deadline, waiter_id);
    waiters_[waiter_id] = std::move(waiter);
    Park(space, waiter_id, &completions);
  }
  Run(completions);
}

bool RendezvousSpaces::Cancel(uint64_t waiter_id) {
  absl::MutexLock lock(&mu_);
  auto it = waiters_.find(waiter_id);
  if (it == waiters_.end()) return false;
  Waiter* waiter = it->second.get();
  auto space = spaces_.find(waiter->space);
  if (space != spaces_.end()) Unpark(space->second, waiter_id);
  EraseDeadlineLocked(waiter->deadline, waiter_id);
  waiters_.erase(it);
  return true;
}

std::map<std::string, std::vector<std::string>> RendezvousSpaces::WaitingKeys(
    const std::string& cluster, int64_t epoch) const {
  std::map<std::string, std::vector<std::string>> waiting;
  absl::MutexLock lock(&mu_);
  auto space = spaces_.find({cluster, epoch});
  if (space == spaces_.end()) return waiting;
  for (const auto& [id, waiter] : space->second.waiters) {
    if (waiter->member_id.empty()) continue;
    std::vector<std::string>& keys = waiting[waiter->member_id];
    for (const std::string& key : waiter->keys) {
      if (keys.size() >= kMaxWaitingKeysPerMember) break;
      if (space->second.values.count(key) == 0 &&
          std::find(keys.begin(), keys.end(), key) == keys.end()) {
        keys.push_back(key);
      }
    }
  }
  return waiting;
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
        EraseDeadlineLocked(waiter->deadline, id);
        waiters_.erase(id);
      }
      it = spaces_.erase(it);
    }
  }
  Run(completions);
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
        deadlines_.empty() ? clock_->Now() + absl::Milliseconds(200) : deadlines_.begin()->first;
    // Wakes at the next deadline, or every 200 ms to notice new, earlier deadlines and stop.
    const absl::Time until = std::min(next, clock_->Now() + absl::Milliseconds(200));
    mu_.AwaitWithDeadline(absl::Condition(&stopping_), until);
    if (stopping_) break;
    std::vector<Completion> completions;
    const absl::Time now = clock_->Now();
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
      if (space != spaces_.end()) Unpark(space->second, id);
      waiters_.erase(it);
    }
    if (completions.empty()) continue;
    mu_.Unlock();
    Run(completions);
    mu_.Lock();
  }
}

}  // namespace splitd::daemon
