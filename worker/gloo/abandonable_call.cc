#include "worker/gloo/abandonable_call.h"

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace splitd::worker {

RendezvousClient* ReleasableClient::Hold() {
  absl::MutexLock lock(&mu_);
  if (client_ != nullptr) ++in_flight_;
  return client_;
}

void ReleasableClient::Unhold() {
  absl::MutexLock lock(&mu_);
  --in_flight_;
}

absl::Status ReleasableClient::Set(const std::string& key, const std::string& value) {
  RendezvousClient* client = Hold();
  if (client == nullptr) return absl::CancelledError("the rendezvous was given up");
  absl::Status status = client->Set(key, value);
  Unhold();
  return status;
}

absl::StatusOr<std::vector<std::string>> ReleasableClient::Get(const std::vector<std::string>& keys,
                                                               absl::Duration timeout) {
  RendezvousClient* client = Hold();
  if (client == nullptr) return absl::CancelledError("the rendezvous was given up");
  absl::StatusOr<std::vector<std::string>> values = client->Get(keys, timeout);
  Unhold();
  return values;
}

absl::StatusOr<int64_t> ReleasableClient::Add(const std::string& key, int64_t delta) {
  RendezvousClient* client = Hold();
  if (client == nullptr) return absl::CancelledError("the rendezvous was given up");
  absl::StatusOr<int64_t> value = client->Add(key, delta);
  Unhold();
  return value;
}

bool ReleasableClient::Cancelled() const {
  absl::MutexLock lock(&mu_);
  return client_ == nullptr || client_->Cancelled();
}

void ReleasableClient::Release() {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
  mu_.Await(absl::Condition(&idle));
  client_ = nullptr;
}

namespace {

// What the caller and the call's thread share; outlives whichever leaves last.
struct Attempt {
  explicit Attempt(RendezvousClient* rendezvous) : client(rendezvous) {}
  ReleasableClient client;
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  absl::Status status ABSL_GUARDED_BY(mu);
};

}  // namespace

absl::Status RunAbandonable(const std::string& what, RendezvousClient* rendezvous,
                            std::function<absl::Status(RendezvousClient*)> call) {
  auto attempt = std::make_shared<Attempt>(rendezvous);
  std::thread([attempt, call = std::move(call)]() {
    absl::Status status = call(&attempt->client);
    absl::MutexLock lock(&attempt->mu);
    attempt->status = std::move(status);
    attempt->done = true;
  }).detach();
  {
    absl::MutexLock lock(&attempt->mu);
    // The client's cancellation has no signal of its own: look every 20 ms.
    while (!attempt->done && !rendezvous->Cancelled()) {
      attempt->mu.AwaitWithTimeout(absl::Condition(&attempt->done), absl::Milliseconds(20));
    }
    if (attempt->done) return attempt->status;
  }
  attempt->client.Release();
  spdlog::debug("{}: given up with the rendezvous; it ends in the background", what);
  return absl::CancelledError(
      absl::StrCat(what, ": abandoned (the rendezvous was given up); it ends in the background"));
}

}  // namespace splitd::worker
