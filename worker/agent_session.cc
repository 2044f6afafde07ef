// The agent's session with the daemon: Register, the plan stream and heartbeats, on the threads
// Run() starts.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/error_table.h"
#include "common/grpc_status.h"
#include "spdlog/spdlog.h"
#include "worker/agent.h"
#include "worker/agent_internal.h"
#include "worker/backoff.h"

namespace splitd::worker {
namespace {

using agent_internal::Millis;
using agent_internal::SessionLost;

// Register fails with these while the daemon is away, the cluster is not applied yet, or an
// earlier process on this device still holds its lease (common/error_table.cc).
bool RetryableRegisterError(absl::StatusCode code) {
  const AgentAction action = DaemonErrorCode(code).on_register;
  return action == AgentAction::kRetry || action == AgentAction::kWaitForDaemon;
}

}  // namespace

// ---- Session: Register and the plan stream ----

void Agent::SessionLoop() {
  Backoff backoff(options_.initial_backoff, options_.max_backoff);
  absl::StatusCode last_register_error = absl::StatusCode::kOk;
  while (!stopping()) {
    bool valid;
    {
      absl::MutexLock lock(&mu_);
      valid = session_valid_;
    }
    if (!valid) {
      const absl::Status registered = RegisterOnce();
      if (!registered.ok()) {
        if (stopping()) return;
        if (!RetryableRegisterError(registered.code())) {
          Fatal(absl::Status(registered.code(),
                             absl::StrCat("Register refused: ", registered.message())));
          return;
        }
        const absl::Duration delay = backoff.NextDelay();
        // Warn once per kind of failure; the retries themselves are routine while the daemon
        // starts or the cluster is being applied.
        if (registered.code() != last_register_error) {
          spdlog::warn("Register: {}; retrying (next in {:.0f} ms)", registered.ToString(),
                       Millis(delay));
          last_register_error = registered.code();
        } else {
          spdlog::debug("Register: {}; retrying in {:.0f} ms", registered.ToString(),
                        Millis(delay));
        }
        if (SleepOrStop(delay)) return;
        continue;
      }
      last_register_error = absl::StatusCode::kOk;
      backoff.Reset();
    }

    bool received_any = false;
    const absl::Status ended = WatchOnce(&received_any);
    if (stopping()) return;
    if (received_any) backoff.Reset();
    if (SessionLost(ended.code())) {
      int64_t generation;
      {
        absl::MutexLock lock(&mu_);
        generation = session_generation_;
      }
      InvalidateSession(generation, ended);
    }
    const absl::Duration delay = backoff.NextDelay();
    spdlog::warn("plan stream ended: {}; re-opening in {:.0f} ms (groups are kept)",
                 ended.ToString(), Millis(delay));
    if (SleepOrStop(delay)) return;
  }
}

absl::Status Agent::RegisterOnce() {
  v1::RegisterRequest request;
  v1::MemberIdentity* identity = request.mutable_identity();
  identity->set_cluster(options_.cluster);
  identity->set_pod(options_.pod);
  identity->set_node(options_.node);
  identity->set_host(options_.host);
  identity->set_local_index(options_.local_index);
  identity->set_incarnation(incarnation_);
  v1::Capabilities* capabilities = request.mutable_capabilities();
  for (const auto& [backend, factory] : factories_) capabilities->add_backends(backend);
  capabilities->set_device_type(options_.device_type);
  capabilities->set_nccl_version(options_.nccl_version);
  capabilities->set_device_count(options_.device_count);

  v1::RegisterResponse response;
  const grpc::Status status = Invoke(options_.rpc_timeout, [&](grpc::ClientContext* context) {
    return stub_->Register(context, request, &response);
  });
  if (!status.ok()) return FromGrpcStatus(status);

  const absl::Duration interval = response.heartbeat_interval_ms() > 0
                                      ? absl::Milliseconds(response.heartbeat_interval_ms())
                                      : options_.default_heartbeat_interval;
  {
    absl::MutexLock lock(&mu_);
    credentials_.set_cluster(options_.cluster);
    credentials_.set_member_id(response.member_id());
    credentials_.set_session_token(response.session_token());
    heartbeat_interval_ = interval;
    heartbeat_now_ = true;  // the lease starts now: the first heartbeat follows the new interval
    session_valid_ = true;
    ++session_generation_;
    // Ask for the current plan again: after a re-registration the daemon's view may differ
    // from ours; the plan loop skips a plan it already holds.
    seen_epoch_ = 0;
    state_.registered = true;
    state_.member_id = response.member_id();
  }
  spdlog::info("registered with cluster {} as member {} (heartbeat every {:.0f} ms)",
               options_.cluster, response.member_id(), Millis(interval));
  return absl::OkStatus();
}

void Agent::InvalidateSession(int64_t generation, const absl::Status& why) {
  absl::MutexLock lock(&mu_);
  if (generation != session_generation_ || !session_valid_) return;  // already renewed
  spdlog::warn("daemon no longer accepts member {}: {}; registering again",
               credentials_.member_id(), why.ToString());
  session_valid_ = false;
  state_.registered = false;
  if (stream_context_ != nullptr) stream_context_->TryCancel();
}

absl::Status Agent::WatchOnce(bool* received_any) {
  grpc::ClientContext context;
  v1::WatchPlanRequest request;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::CancelledError("agent is stopping");
    if (!session_valid_) return absl::UnauthenticatedError("session was invalidated");
    *request.mutable_member() = credentials_;
    request.set_known_epoch(seen_epoch_);
    stream_context_ = &context;
  }
  spdlog::debug("watching plans after epoch {}", request.known_epoch());
  std::unique_ptr<grpc::ClientReaderInterface<v1::WatchPlanResponse>> reader =
      stub_->WatchPlan(&context, request);
  v1::WatchPlanResponse message;
  bool stale = false;
  while (reader->Read(&message)) {
    if (options_.terms != nullptr &&
        !options_.terms->Admit(TermOf(context.GetServerInitialMetadata()))) {
      stale = true;
      context.TryCancel();
      break;
    }
    *received_any = true;
    const int64_t epoch = message.plan().epoch();
    std::shared_ptr<GrpcRendezvousClient> obsolete;
    {
      absl::MutexLock lock(&mu_);
      seen_epoch_ = std::max(seen_epoch_, epoch);
      pending_ = message;
      // A bootstrap of an older epoch can only time out now: unblock it.
      if (rendezvous_ != nullptr && rendezvous_->epoch() < epoch) obsolete = rendezvous_;
    }
    spdlog::info("plan of epoch {} received (rank {})", epoch, message.rank());
    if (obsolete != nullptr) obsolete->Cancel();
  }
  const grpc::Status status = reader->Finish();
  {
    absl::MutexLock lock(&mu_);
    stream_context_ = nullptr;
  }
  if (stale) {
    return absl::UnavailableError(absl::StrCat(
        "plan stream of splitd term ", TermOf(context.GetServerInitialMetadata()), " after term ",
        options_.terms->highest(), ": a replica that no longer leads"));
  }
  if (status.ok()) return absl::UnavailableError("the daemon closed the plan stream");
  return FromGrpcStatus(status);
}

// ---- Heartbeats ----

void Agent::HeartbeatLoop() {
  bool failing = false;
  // After a failed heartbeat the next one comes sooner (from 200 ms, doubling up to the
  // interval, with jitter): a new leader hears every member soon after it serves.
  Backoff retry(absl::Milliseconds(200), absl::Seconds(60));
  while (true) {
    absl::Duration interval;
    {
      absl::MutexLock lock(&mu_);
      interval = failing ? std::min(retry.NextDelay(), heartbeat_interval_) : heartbeat_interval_;
      // Sleeps one interval, cut short by Stop() or a registration (which sets a new interval).
      auto woken = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || heartbeat_now_; };
      mu_.AwaitWithTimeout(absl::Condition(&woken), interval);
      if (stopping_) return;
      if (heartbeat_now_) {
        heartbeat_now_ = false;
        continue;
      }
    }

    v1::HeartbeatRequest request;
    int64_t generation;
    {
      absl::MutexLock lock(&mu_);
      if (!session_valid_) continue;
      *request.mutable_member() = credentials_;
      request.set_epoch(state_.epoch);
      generation = session_generation_;
    }
    v1::HeartbeatResponse response;
    const grpc::Status status = Invoke(options_.rpc_timeout, [&](grpc::ClientContext* context) {
      return stub_->Heartbeat(context, request, &response);
    });
    if (status.ok()) {
      if (failing) spdlog::info("heartbeats go through again");
      failing = false;
      retry.Reset();
      if (response.excluded()) {
        spdlog::warn("{}; releasing the groups and stopping", response.reason());
        {
          absl::MutexLock lock(&mu_);
          excluded_ = response.reason();
        }
        Stop();
        return;
      }
      bool announce = false;
      {
        absl::MutexLock lock(&mu_);
        if (response.heartbeat_interval_ms() > 0) {
          heartbeat_interval_ = absl::Milliseconds(response.heartbeat_interval_ms());
        }
        if (response.epoch() > request.epoch() && response.epoch() > announced_epoch_) {
          announced_epoch_ = response.epoch();
          announce = true;
        }
      }
      if (announce) {
        spdlog::info("daemon is at epoch {} (we hold {}); its plan is on its way", response.epoch(),
                     request.epoch());
      }
      continue;
    }
    const absl::Status error = FromGrpcStatus(status);
    if (stopping()) return;
    if (SessionLost(error.code())) {
      InvalidateSession(generation, error);
    } else if (!failing) {
      spdlog::warn(
          "heartbeat failed: {} (groups are kept; retrying from 200 ms up to every "
          "{:.0f} ms)",
          error.ToString(), Millis(interval));
    }
    failing = true;
  }
}

}  // namespace splitd::worker
