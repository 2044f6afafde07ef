#include "worker/grpc_rendezvous_client.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"

namespace splitd::worker {
namespace {

constexpr absl::Duration kMaxPause = absl::Milliseconds(500);

// Adds which call and key failed to a status from the daemon, keeping its code.
absl::Status Annotate(const absl::Status& status, const std::string& call,
                      const std::string& what) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(call, " ", what, ": ", status.message()));
}

}  // namespace

GrpcRendezvousClient::GrpcRendezvousClient(v1::AgentService::StubInterface* stub,
                                           v1::MemberCredentials credentials, int64_t epoch,
                                           absl::Duration call_timeout)
    : stub_(stub),
      credentials_(std::move(credentials)),
      epoch_(epoch),
      call_timeout_(call_timeout) {}

absl::Status GrpcRendezvousClient::Begin(grpc::ClientContext* context, absl::Duration timeout) {
  if (timeout < absl::ZeroDuration()) timeout = absl::ZeroDuration();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  context->set_wait_for_ready(true);
  absl::MutexLock lock(&mu_);
  if (cancelled_) {
    return absl::CancelledError(absl::StrCat("rendezvous of epoch ", epoch_, " was cancelled"));
  }
  in_flight_.insert(context);
  return absl::OkStatus();
}

void GrpcRendezvousClient::End(grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  in_flight_.erase(context);
}

bool GrpcRendezvousClient::Cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

void GrpcRendezvousClient::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  // TryCancel only signals; it never blocks, so it is safe under the lock.
  for (grpc::ClientContext* context : in_flight_) context->TryCancel();
}

absl::Status GrpcRendezvousClient::Set(const std::string& key, const std::string& value) {
  v1::KvSetRequest request;
  *request.mutable_member() = credentials_;
  request.set_epoch(epoch_);
  request.set_key(key);
  request.set_value(value);
  const absl::Time deadline = absl::Now() + call_timeout_;
  absl::Status status;
  // Setting a key again is harmless, so a call the connection lost is sent again (the daemon
  // may be restarting) until the deadline.
  for (absl::Duration pause = absl::Milliseconds(20);; pause = std::min(pause * 2, kMaxPause)) {
    v1::KvSetResponse response;
    grpc::ClientContext context;
    if (absl::Status begun = Begin(&context, deadline - absl::Now()); !begun.ok()) return begun;
    status = FromGrpcStatus(stub_->KvSet(&context, request, &response));
    End(&context);
    if (!Retryable(status) || !PauseBefore(deadline, pause)) break;
  }
  return Annotate(status, "KvSet", absl::StrCat("\"", key, "\""));
}

absl::StatusOr<std::vector<std::string>> GrpcRendezvousClient::Get(
    const std::vector<std::string>& keys, absl::Duration timeout) {
  v1::KvGetRequest request;
  *request.mutable_member() = credentials_;
  request.set_epoch(epoch_);
  for (const std::string& key : keys) request.add_keys(key);
  const std::string what =
      keys.size() == 1 ? absl::StrCat("\"", keys[0], "\"") : absl::StrCat(keys.size(), " keys");
  const absl::Time deadline = absl::Now() + timeout;
  v1::KvGetResponse response;
  absl::Status status;
  // Reading is harmless too: a wait the connection lost is resumed until the deadline.
  for (absl::Duration pause = absl::Milliseconds(20);; pause = std::min(pause * 2, kMaxPause)) {
    response.Clear();
    grpc::ClientContext context;
    if (absl::Status begun = Begin(&context, deadline - absl::Now()); !begun.ok()) return begun;
    status = FromGrpcStatus(stub_->KvGet(&context, request, &response));
    End(&context);
    if (!Retryable(status) || !PauseBefore(deadline, pause)) break;
  }
  if (!status.ok()) return Annotate(status, "KvGet", what);
  if (response.values_size() != static_cast<int>(keys.size())) {
    return absl::InternalError(absl::StrCat("KvGet ", what, ": daemon returned ",
                                            response.values_size(), " values for ", keys.size(),
                                            " keys"));
  }
  return std::vector<std::string>(response.values().begin(), response.values().end());
}

bool GrpcRendezvousClient::Retryable(const absl::Status& status) {
  // UNAVAILABLE: the connection broke or the daemon is restarting or starting up.
  return status.code() == absl::StatusCode::kUnavailable;
}

bool GrpcRendezvousClient::PauseBefore(absl::Time deadline, absl::Duration pause) {
  if (absl::Now() + pause >= deadline) return false;
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return false;
  }
  absl::SleepFor(pause);
  return true;
}

absl::StatusOr<int64_t> GrpcRendezvousClient::Add(const std::string& key, int64_t delta) {
  v1::KvAddRequest request;
  *request.mutable_member() = credentials_;
  request.set_epoch(epoch_);
  request.set_key(key);
  request.set_delta(delta);
  v1::KvAddResponse response;
  grpc::ClientContext context;
  if (absl::Status begun = Begin(&context, call_timeout_); !begun.ok()) return begun;
  const grpc::Status status = stub_->KvAdd(&context, request, &response);
  End(&context);
  if (!status.ok()) {
    return Annotate(FromGrpcStatus(status), "KvAdd", absl::StrCat("\"", key, "\""));
  }
  return response.value();
}

}  // namespace splitd::worker
