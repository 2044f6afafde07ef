#include "worker/agent.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/error_table.h"
#include "common/grpc_status.h"
#include "spdlog/spdlog.h"
#include "worker/backoff.h"

namespace splitd::worker {
namespace {

// A fresh 128-bit random id per process start, as hex.
std::string NewIncarnation() {
  absl::BitGen gen;
  return absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(gen), absl::Uniform<uint64_t>(gen));
}

// Register fails with these while the daemon is away, the cluster is not applied yet, or an
// earlier process on this device still holds its lease (common/error_table.cc).
bool RetryableRegisterError(absl::StatusCode code) {
  const AgentAction action = DaemonErrorCode(code).on_register;
  return action == AgentAction::kRetry || action == AgentAction::kWaitForDaemon;
}

// The daemon no longer knows these credentials (lease expired, daemon state lost): register
// again with the same incarnation.
bool SessionLost(absl::StatusCode code) {
  return DaemonErrorCode(code).on_session_call == AgentAction::kRegisterAgain;
}

// The call's epoch is over: the daemon has moved on to a newer plan.
bool EpochOver(const absl::Status& status) {
  return DaemonErrorCode(status.code()).on_session_call == AgentAction::kNextEpoch;
}

double Millis(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

}  // namespace

const char* PhaseName(v1::Phase phase) {
  switch (phase) {
    case v1::PHASE_BOOTSTRAPPING:
      return "BOOTSTRAPPING";
    case v1::PHASE_SPLITTING:
      return "SPLITTING";
    case v1::PHASE_VALIDATING:
      return "VALIDATING";
    case v1::PHASE_READY:
      return "READY";
    case v1::PHASE_FAILED:
      return "FAILED";
    case v1::PHASE_PLANNED:
      return "PLANNED";
    default:
      return "UNSPECIFIED";
  }
}

Agent::Agent(AgentOptions options, std::shared_ptr<grpc::ChannelInterface> channel,
             GroupBuilderFactories factories)
    : Agent(std::move(options), v1::AgentService::NewStub(channel), std::move(factories)) {}

Agent::Agent(AgentOptions options, std::unique_ptr<v1::AgentService::StubInterface> stub,
             GroupBuilderFactories factories)
    : options_(std::move(options)),
      stub_(std::move(stub)),
      factories_(std::move(factories)),
      incarnation_(NewIncarnation()),
      heartbeat_interval_(options_.default_heartbeat_interval) {}

Agent::~Agent() {
  Stop();
  if (session_thread_.joinable()) session_thread_.join();
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  StopWorkloadEndpoint();
  ReleaseBuilders();
  WaitForAsyncCalls();
}

// ---- Shared helpers ----

bool Agent::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

void Agent::Stop() {
  std::shared_ptr<GrpcRendezvousClient> rendezvous;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    // TryCancel only signals the call; it never blocks.
    if (stream_context_ != nullptr) stream_context_->TryCancel();
    for (grpc::ClientContext* context : calls_) context->TryCancel();
    rendezvous = rendezvous_;
  }
  if (rendezvous != nullptr) rendezvous->Cancel();
}

void Agent::Fatal(const absl::Status& status) {
  spdlog::error("giving up: {}", status.ToString());
  {
    absl::MutexLock lock(&mu_);
    if (fatal_.ok()) fatal_ = status;
  }
  Stop();
}

bool Agent::SleepOrStop(absl::Duration duration) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopping_), duration);
  return stopping_;
}

v1::MemberCredentials Agent::Credentials() const {
  absl::MutexLock lock(&mu_);
  return credentials_;
}

AgentState Agent::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

template <typename Call>
grpc::Status Agent::Invoke(absl::Duration timeout, Call call) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return grpc::Status(grpc::StatusCode::CANCELLED, "agent is stopping");
    calls_.insert(&context);
  }
  grpc::Status status = call(&context);
  {
    absl::MutexLock lock(&mu_);
    calls_.erase(&context);
  }
  return status;
}

// ---- Run ----

absl::Status Agent::Run() {
  {
    absl::MutexLock lock(&mu_);
    if (running_) return absl::FailedPreconditionError("Agent::Run was already called");
    running_ = true;
  }
  spdlog::info(
      "splitd-agent for cluster {} starting: pod {}, node {}, host {}, local index {}, "
      "incarnation {}",
      options_.cluster, options_.pod, options_.node, options_.host, options_.local_index,
      incarnation_);
  if (absl::Status started = StartWorkloadEndpoint(); !started.ok()) return started;
  session_thread_ = std::thread([this] { SessionLoop(); });
  heartbeat_thread_ = std::thread([this] { HeartbeatLoop(); });

  while (true) {
    v1::WatchPlanResponse message;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || pending_.has_value();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) break;
      message = std::move(*pending_);
      pending_.reset();
    }
    if (held_.has_value() && held_->epoch == message.plan().epoch() &&
        held_->rank == message.rank() && held_->plan_fingerprint == message.plan().fingerprint()) {
      continue;  // the plan we hold, delivered again after a re-registration
    }
    HandlePlan(message);
  }

  spdlog::info("stopping");
  ReleaseBuilders();
  std::string excluded;
  {
    absl::MutexLock lock(&mu_);
    excluded = excluded_;
  }
  if (!excluded.empty() && held_.has_value()) WritePlanFile(*held_, nullptr, "EXCLUDED", excluded);
  Stop();
  session_thread_.join();
  heartbeat_thread_.join();
  StopWorkloadEndpoint();
  absl::MutexLock lock(&mu_);
  return fatal_;
}

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
  while (reader->Read(&message)) {
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
  if (status.ok()) return absl::UnavailableError("the daemon closed the plan stream");
  return FromGrpcStatus(status);
}

// ---- Heartbeats ----

void Agent::HeartbeatLoop() {
  bool failing = false;
  while (true) {
    absl::Duration interval;
    {
      absl::MutexLock lock(&mu_);
      interval = heartbeat_interval_;
      // Sleeps one interval, cut short by Stop() or a registration (which sets a new interval).
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || heartbeat_now_;
      };
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
      spdlog::warn("heartbeat failed: {} (groups are kept; retrying every {:.0f} ms)",
                   error.ToString(), Millis(interval));
    }
    failing = true;
  }
}

// ---- Plan loop ----

bool Agent::Superseded(int64_t epoch) {
  absl::MutexLock lock(&mu_);
  return stopping_ || (pending_.has_value() && pending_->plan().epoch() != epoch);
}

void Agent::SetPhase(const EpochWork& work, v1::Phase phase, const std::string& error) {
  absl::MutexLock lock(&mu_);
  state_.epoch = work.epoch;
  state_.rank = work.rank;
  state_.phase = phase;
  state_.error = error;
}

void Agent::ReleaseBuilders() {
  for (HeldBuilder& held : builders_) {
    if (held.builder != nullptr) held.builder->Release();
  }
  builders_.clear();
  std::shared_ptr<GrpcRendezvousClient> rendezvous;
  {
    absl::MutexLock lock(&mu_);
    rendezvous = std::move(rendezvous_);
    rendezvous_.reset();
  }
  // The process must not exit with an abort half done (the driver would tear the context down
  // under it): stopping waits for the background teardowns.
  PruneReaping(/*wait=*/stopping());
}

void Agent::PruneReaping(bool wait) {
  if (reaping_.empty()) return;
  const absl::Time start = absl::Now();
  const size_t before = reaping_.size();
  reaping_.erase(std::remove_if(reaping_.begin(), reaping_.end(),
                                [wait](const std::unique_ptr<GroupBuilder>& builder) {
                                  return wait || !builder->TearingDown();
                                }),
                 reaping_.end());
  if (wait) {
    spdlog::info("waited {:.1f} ms for {} background communicator teardown(s)",
                 Millis(absl::Now() - start), before);
  }
}

void Agent::ReleaseDeviceBuilders(const std::string& prefix) {
  for (auto it = builders_.begin(); it != builders_.end();) {
    if (absl::StartsWith(it->backend, "cuda:")) {
      it->builder->Release();
      spdlog::info("{}: {} communicators released after validation (the workload owns the GPU)",
                   prefix, it->backend);
      it = builders_.erase(it);
    } else {
      ++it;
    }
  }
}

void Agent::AbortDeviceBuilders(std::vector<HeldBuilder>* builders, const std::string& why) {
  PruneReaping(/*wait=*/false);
  for (auto it = builders->begin(); it != builders->end();) {
    if (absl::StartsWith(it->backend, "cuda:")) {
      if (it->builder != nullptr) {
        const absl::Time start = absl::Now();
        it->builder->AbortInBackground();
        spdlog::info("{}: {} communicators of epoch {} handed to a background abort in {:.1f} ms",
                     why, it->backend, it->spec.epoch, Millis(absl::Now() - start));
        reaping_.push_back(std::move(it->builder));
      }
      it = builders->erase(it);
    } else {
      ++it;
    }
  }
}

void Agent::HandlePlan(const v1::WatchPlanResponse& message) {
  const v1::Plan& plan = message.plan();
  // Any new epoch may follow a lost member, and a destroy may wait on a dead peer: the device
  // communicators of the held epoch are aborted, never destroyed, in the background so that the
  // new world does not wait for it; except, when the plan only removes ranks from the held
  // epoch (Plan.shrinks_epoch), those this rank can shrink into the new world instead.
  ShrinkSource shrink;
  shrink.epoch = plan.shrinks_epoch();
  shrink.previous_ranks.assign(plan.previous_ranks().begin(), plan.previous_ranks().end());
  const bool shrinks_held =
      shrink.epoch != 0 && held_.has_value() && held_->epoch == shrink.epoch;
  if (!builders_.empty()) {
    spdlog::info("epoch {}: releasing the groups of epoch {}", plan.epoch(), held_->epoch);
    if (shrinks_held && message.rank() >= 0) {
      for (auto it = builders_.begin(); it != builders_.end();) {
        if (absl::StartsWith(it->backend, "cuda:")) {
          shrink.builders.push_back(std::move(*it));
          it = builders_.erase(it);
        } else {
          ++it;
        }
      }
    } else {
      AbortDeviceBuilders(&builders_,
                          absl::StrCat("epoch ", plan.epoch(), shrinks_held
                                                                   ? ": no rank in the shrunk world"
                                                                   : ": a new epoch"));
    }
    ReleaseBuilders();
  }
  // Whatever is still held of the shrunk epoch when this plan is done with is aborted.
  auto abort_leftovers = absl::MakeCleanup([this, &shrink, epoch = plan.epoch()] {
    AbortDeviceBuilders(&shrink.builders, absl::StrCat("epoch ", epoch, ": not shrunk"));
  });
  EpochWork work;
  work.epoch = plan.epoch();
  work.rank = message.rank();
  work.plan_fingerprint = plan.fingerprint();
  work.fingerprint = plan.fingerprint();
  work.received = absl::Now();
  held_ = work;
  SetPhase(work, v1::PHASE_PLANNED, "");

  if (message.rank() < 0) {
    spdlog::info("epoch {}: spare (no rank); waiting for a later plan", plan.epoch());
    DerivedPlan spare;
    spare.cluster = plan.cluster();
    spare.epoch = plan.epoch();
    spare.rank = -1;
    spare.world_size = static_cast<int>(plan.world_size());
    spare.method = plan.method();
    spare.fingerprint = plan.fingerprint();
    WritePlanFile(work, &spare, "SPARE", "");
    return;
  }
  spdlog::info("epoch {}: rank {} of {}, method {}, fingerprint {}", plan.epoch(), message.rank(),
               plan.world_size(), plan.method(), plan.fingerprint());

  DerivationOptions derivation;
  derivation.host = options_.host;
  derivation.timeout = options_.timeout;
  derivation.device_index = static_cast<int>(
      options_.device_index >= 0 ? options_.device_index : options_.local_index);
  derivation.corrupt_fingerprint = options_.corrupt_fingerprint;
  std::string derived_fingerprint;
  absl::StatusOr<DerivedPlan> derived = DerivePlan(message, derivation, &derived_fingerprint);
  if (!derived_fingerprint.empty()) work.fingerprint = derived_fingerprint;
  if (!derived.ok()) {
    // A mismatch already names the rank and both digests; say so for other errors too.
    const std::string error =
        derived.status().code() == absl::StatusCode::kFailedPrecondition
            ? std::string(derived.status().message())
            : absl::StrCat("rank ", message.rank(), ": cannot derive the plan of epoch ",
                           plan.epoch(), ": ", derived.status().message());
    DerivedPlan bare;  // the plan's facts for the plan file; no groups are formed
    bare.world_size = static_cast<int>(plan.world_size());
    bare.method = plan.method();
    FailEpoch(&work, &bare, error);
    return;
  }
  if (!derived->preflight) {
    HandOverWithoutPreflight(*derived, &work);
  } else {
    FormEpoch(*derived, &work, &shrink);
  }
  held_ = work;
}

absl::StatusOr<bool> Agent::AgreeOnShrink(RendezvousClient* rendezvous, const std::string& backend,
                                           int world_size, bool able, absl::Duration timeout) {
  // Each rank counts itself in after its refusal (if any) is counted; the last one in reads
  // the refusals, all of them counted by then, and publishes the decision everyone waits for.
  // O(1) keys and calls per rank.
  const std::string prefix = absl::StrCat("shrink/", backend, "/");
  if (!able) {
    absl::StatusOr<int64_t> refused = rendezvous->Add(prefix + "refusals", 1);
    if (!refused.ok()) return refused.status();
  }
  absl::StatusOr<int64_t> arrived = rendezvous->Add(prefix + "arrived", 1);
  if (!arrived.ok()) return arrived.status();
  if (*arrived == world_size) {
    absl::StatusOr<int64_t> refusals = rendezvous->Add(prefix + "refusals", 0);
    if (!refusals.ok()) return refusals.status();
    const absl::Status set =
        rendezvous->Set(prefix + "decision", *refusals == 0 ? "shrink" : "bootstrap");
    if (!set.ok()) return set;
  }
  absl::StatusOr<std::vector<std::string>> decision =
      rendezvous->Get({prefix + "decision"}, timeout);
  if (!decision.ok()) return decision.status();
  if (decision->size() != 1) {
    return absl::InternalError(absl::StrCat("rendezvous get of ", prefix, "decision returned ",
                                            decision->size(), " values"));
  }
  return (*decision)[0] == "shrink";
}

absl::Status Agent::ShrinkOrBootstrap(HeldBuilder* held, ShrinkSource* shrink,
                                      RendezvousClient* rendezvous, const std::string& prefix) {
  const absl::Time start = absl::Now();
  const bool device = absl::StartsWith(held->backend, "cuda:");
  if (shrink->epoch == 0 || !device) {
    if (held->builder == nullptr) held->builder = factories_.at(held->backend)();
    const absl::Status status = held->builder->BootstrapWorld(held->spec, rendezvous);
    if (status.ok()) {
      spdlog::info("{}: {} world of {} connected in {:.1f} ms", prefix, held->backend,
                   held->spec.world_size, Millis(absl::Now() - start));
    }
    return status;
  }

  // Every rank of the new world votes, whether it holds the shrunk epoch or not, so that no
  // rank waits in a shrink for one that bootstraps (or the other way round).
  std::unique_ptr<GroupBuilder> candidate;
  int held_size = 0;
  for (auto it = shrink->builders.begin(); it != shrink->builders.end(); ++it) {
    if (it->backend == held->backend) {
      candidate = std::move(it->builder);
      held_size = it->spec.world_size;
      shrink->builders.erase(it);
      break;
    }
  }
  std::string why;
  if (candidate == nullptr) {
    why = absl::StrCat("this rank holds no ", held->backend, " world of epoch ", shrink->epoch);
  } else if (!candidate->CanShrink()) {
    why = absl::StrCat(held->backend, " cannot shrink here");
  } else if (static_cast<int64_t>(shrink->previous_ranks.size()) != held->spec.world_size) {
    why = absl::StrCat("the plan maps ", shrink->previous_ranks.size(), " of ",
                       held->spec.world_size, " ranks to epoch ", shrink->epoch);
  }
  absl::StatusOr<bool> agreed = AgreeOnShrink(rendezvous, held->backend, held->spec.world_size,
                                              why.empty(), held->spec.timeout);
  const absl::Time voted = absl::Now();
  if (!agreed.ok()) {
    why = absl::StrCat("the shrink vote failed: ", agreed.status().ToString());
  } else if (!*agreed && why.empty()) {
    why = "another rank cannot shrink";
  }

  if (agreed.ok() && *agreed) {
    held->builder = std::move(candidate);
    const absl::Status status =
        held->builder->ShrinkWorld(held->spec, shrink->previous_ranks, rendezvous);
    if (status.ok()) {
      spdlog::info("{}: {} world shrunk from {} to {} ranks in {:.1f} ms (vote {:.1f} ms, "
                   "shrink {:.1f} ms; no fresh bootstrap)",
                   prefix, held->backend, held_size, held->spec.world_size,
                   Millis(absl::Now() - start), Millis(voted - start), Millis(absl::Now() - voted));
      return absl::OkStatus();
    }
    why = absl::StrCat("the shrink failed after ", absl::FormatDuration(absl::Now() - voted), ": ",
                       status.ToString());
    candidate = std::move(held->builder);
  }
  // Fall back: a fresh world on a builder that holds nothing; what it held is aborted in the
  // background meanwhile.
  if (candidate != nullptr) {
    candidate->AbortInBackground();
    held->builder = std::move(candidate);
  } else {
    held->builder = factories_.at(held->backend)();
  }
  spdlog::info("{}: {} world of epoch {} not shrunk ({}); bootstrapping a fresh world", prefix,
               held->backend, shrink->epoch, why);
  const absl::Time fresh = absl::Now();
  const absl::Status status = held->builder->BootstrapWorld(held->spec, rendezvous);
  if (status.ok()) {
    spdlog::info("{}: {} world of {} connected by a fresh bootstrap in {:.1f} ms ({:.1f} ms "
                 "since the shrink vote began)",
                 prefix, held->backend, held->spec.world_size, Millis(absl::Now() - fresh),
                 Millis(absl::Now() - start));
  }
  return status;
}

void Agent::FormEpoch(const DerivedPlan& derived, EpochWork* work, ShrinkSource* shrink) {
  // One GroupReport per (kind, backend) this rank takes part in; filled in as phases pass.
  for (const BackendWorld& world : derived.worlds) {
    for (const GroupAssignment& group : world.spec.groups) {
      v1::GroupReport& report = work->groups.emplace_back();
      report.set_kind(group.kind);
      report.set_backend(world.backend);
      report.set_phase(v1::PHASE_BOOTSTRAPPING);
    }
  }
  const std::string prefix = absl::StrCat("epoch ", work->epoch, " rank ", work->rank);

  // Every backend must be available before any world is entered, or peers would wait on us.
  for (const BackendWorld& world : derived.worlds) {
    if (factories_.find(world.backend) == factories_.end()) {
      auto why = options_.unavailable_backends.find(world.backend);
      FailEpoch(work, &derived,
                absl::StrCat("rank ", work->rank, ": backend ", world.backend,
                             " is not available on this agent",
                             why == options_.unavailable_backends.end()
                                 ? std::string()
                                 : absl::StrCat(" (", why->second, ")")));
      return;
    }
  }

  auto abandon = [&](const char* where) {
    spdlog::info("{}: abandoning the epoch {} ({})", prefix, where,
                 stopping() ? "stopping" : "a newer plan arrived");
    // Peers of a half-formed epoch may be gone: abort, never wait on them.
    AbortDeviceBuilders(&builders_, absl::StrCat(prefix, ": abandoned"));
    ReleaseBuilders();
  };
  // Progress goes out without waiting for the answer, so it costs the critical path nothing;
  // the daemon never lets a late progress report move a rank back. An epoch the daemon has left
  // shows up as ABORTED on the rendezvous or on the final report.
  auto report = [&](v1::Phase phase) {
    SetPhase(*work, phase, "");
    for (v1::GroupReport& group : work->groups) group.set_phase(phase);
    ReportProgress(*work, phase);
    return !stopping();
  };

  if (!report(v1::PHASE_BOOTSTRAPPING)) return;
  const v1::MemberCredentials credentials = Credentials();
  auto rendezvous = std::make_shared<GrpcRendezvousClient>(stub_.get(), credentials, work->epoch,
                                                           options_.rpc_timeout);
  {
    absl::MutexLock lock(&mu_);
    rendezvous_ = rendezvous;
  }
  if (Superseded(work->epoch)) return abandon("before bootstrap");
  // Builders come up with their worlds (ShrinkOrBootstrap), in plan order on every rank.
  for (const BackendWorld& world : derived.worlds) {
    builders_.push_back(HeldBuilder{world.backend, world.spec, nullptr});
  }

  // Bootstrap (or shrink) every world.
  for (HeldBuilder& held : builders_) {
    const absl::Status status = ShrinkOrBootstrap(&held, shrink, rendezvous.get(), prefix);
    if (Superseded(work->epoch)) return abandon("during bootstrap");
    if (!status.ok()) {
      return FailEpoch(work, &derived,
                       absl::StrCat("rank ", work->rank, ": backend ", held.backend,
                                    ": bootstrap of the world failed: ", status.ToString()));
    }
  }
  const absl::Time bootstrapped = absl::Now();
  work->timings.set_bootstrap_ms(Millis(bootstrapped - work->received));
  work->timings.set_plan_received_unix_ms(absl::ToUnixMicros(work->received) / 1e3);
  work->timings.set_world_connected_unix_ms(absl::ToUnixMicros(bootstrapped) / 1e3);
  if (!report(v1::PHASE_SPLITTING)) return;

  // Form every group.
  for (HeldBuilder& held : builders_) {
    const absl::Status status = held.builder->FormGroups(held.spec, rendezvous.get());
    if (Superseded(work->epoch)) return abandon("while forming groups");
    if (!status.ok()) {
      return FailEpoch(work, &derived,
                       absl::StrCat("rank ", work->rank, ": backend ", held.backend, ": ",
                                    derived.method, " of the groups failed: ", status.ToString()));
    }
  }
  const absl::Time formed = absl::Now();
  work->timings.set_split_ms(Millis(formed - bootstrapped));
  spdlog::info("{}: groups formed ({}) in {:.1f} ms", prefix, derived.method,
               work->timings.split_ms());
  if (!report(v1::PHASE_VALIDATING)) return;

  // Validate every group; a failing group fails the rank but the others are still reported.
  std::string first_error;
  for (HeldBuilder& held : builders_) {
    absl::StatusOr<std::vector<GroupValidation>> results = held.builder->Validate(held.spec);
    if (Superseded(work->epoch)) return abandon("during validation");
    for (v1::GroupReport& group : work->groups) {
      if (group.backend() != held.backend) continue;
      std::string error;
      if (!results.ok()) {
        error = absl::StrCat("validation failed: ", results.status().ToString());
      } else {
        auto found = std::find_if(results->begin(), results->end(),
                                  [&](const GroupValidation& v) { return v.kind == group.kind(); });
        if (found == results->end()) {
          error = "the backend returned no validation result";
        } else {
          group.set_allreduce_value(found->allreduce_value);
          group.set_latency_us(found->latency_us);
          group.set_bus_bandwidth_gbps(found->bus_bandwidth_gbps);
          if (!found->ok) error = found->error.empty() ? "validation failed" : found->error;
        }
      }
      group.set_phase(error.empty() ? v1::PHASE_READY : v1::PHASE_FAILED);
      group.set_error(error);
      if (!error.empty() && first_error.empty()) {
        first_error =
            absl::StrCat("rank ", work->rank, ": ", group.kind(), " (", held.backend, "): ", error);
      }
    }
  }
  const absl::Time validated = absl::Now();
  work->timings.set_validate_ms(Millis(validated - formed));
  work->timings.set_groups_ready_ms(Millis(validated - work->received));
  work->timings.set_groups_ready_unix_ms(absl::ToUnixMicros(validated) / 1e3);

  const v1::Phase phase = first_error.empty() ? v1::PHASE_READY : v1::PHASE_FAILED;
  SetPhase(*work, phase, first_error);
  for (const v1::GroupReport& group : work->groups) {
    spdlog::info(
        "{}: {} ({}) {}: all-reduce {} in {:.1f} us{}", prefix, group.kind(), group.backend(),
        PhaseName(group.phase()), group.allreduce_value(), group.latency_us(),
        group.bus_bandwidth_gbps() > 0 ? absl::StrFormat(", %.2f GB/s", group.bus_bandwidth_gbps())
                                       : std::string());
  }
  spdlog::info(
      "{}: {} — bootstrap {:.1f} ms, split {:.1f} ms, validate {:.1f} ms, groups ready "
      "{:.1f} ms after the plan",
      prefix, PhaseName(phase), work->timings.bootstrap_ms(), work->timings.split_ms(),
      work->timings.validate_ms(), work->timings.groups_ready_ms());
  const absl::Status reported = Report(*work, phase, first_error);
  if (EpochOver(reported)) {
    spdlog::info("{}: the daemon has moved past this epoch; dropping it", prefix);
    AbortDeviceBuilders(&builders_, absl::StrCat(prefix, ": dropped"));
    ReleaseBuilders();
    return;
  }
  if (!first_error.empty()) {
    ReleaseBuilders();
  } else if (!options_.hold_device_communicators) {
    ReleaseDeviceBuilders(prefix);
  }
  WritePlanFile(*work, &derived, PhaseName(phase), first_error);
}

void Agent::FailEpoch(EpochWork* work, const DerivedPlan* derived, const std::string& error) {
  spdlog::error("epoch {} rank {}: FAILED: {}", work->epoch, work->rank, error);
  ReleaseBuilders();
  for (v1::GroupReport& group : work->groups) {
    group.set_phase(v1::PHASE_FAILED);
    group.set_error(error);
  }
  SetPhase(*work, v1::PHASE_FAILED, error);
  const absl::Status reported = Report(*work, v1::PHASE_FAILED, error);
  if (EpochOver(reported)) return;
  WritePlanFile(*work, derived, "FAILED", error);
}

void Agent::ReportProgress(const EpochWork& work, v1::Phase phase) {
  struct Call {
    grpc::ClientContext context;
    v1::ReportGroupStatusRequest request;
    v1::ReportGroupStatusResponse response;
  };
  auto call = std::make_shared<Call>();
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + options_.rpc_timeout));
  *call->request.mutable_member() = Credentials();
  call->request.set_epoch(work.epoch);
  call->request.set_rank(work.rank);
  call->request.set_fingerprint(work.fingerprint);
  call->request.set_phase(phase);
  for (const v1::GroupReport& group : work.groups) *call->request.add_groups() = group;
  *call->request.mutable_timings() = work.timings;
  {
    // Counted until its callback has run, so the agent never goes away under a call in flight.
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    async_calls_.insert(&call->context);
  }
  stub_->async()->ReportGroupStatus(
      &call->context, &call->request, &call->response, [this, call](grpc::Status status) {
        if (!status.ok()) {
          spdlog::debug("epoch {} rank {}: progress report {} not taken: {}",
                        call->request.epoch(), call->request.rank(),
                        PhaseName(call->request.phase()), status.error_message());
        }
        absl::MutexLock lock(&mu_);
        async_calls_.erase(&call->context);
      });
}

void Agent::WaitForAsyncCalls() {
  absl::MutexLock lock(&mu_);
  for (grpc::ClientContext* context : async_calls_) context->TryCancel();
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return async_calls_.empty(); };
  if (!mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(30))) {
    spdlog::warn("{} progress report(s) still in flight after 30 s", async_calls_.size());
  }
}

absl::Status Agent::Report(const EpochWork& work, v1::Phase phase, const std::string& error) {
  v1::ReportGroupStatusRequest request;
  request.set_epoch(work.epoch);
  request.set_rank(work.rank);
  request.set_fingerprint(work.fingerprint);
  request.set_phase(phase);
  for (const v1::GroupReport& group : work.groups) *request.add_groups() = group;
  request.set_error(error);
  *request.mutable_timings() = work.timings;

  Backoff backoff(options_.initial_backoff, options_.max_backoff);
  absl::Status last;
  // While the daemon is unreachable (UNAVAILABLE: down or restarting) the report waits for it,
  // as long as it takes; other failures are tried report_attempts times.
  for (int attempt = 1; attempt <= std::max(1, options_.report_attempts); ++attempt) {
    *request.mutable_member() = Credentials();
    v1::ReportGroupStatusResponse response;
    const grpc::Status status = Invoke(options_.rpc_timeout, [&](grpc::ClientContext* context) {
      return stub_->ReportGroupStatus(context, request, &response);
    });
    last = FromGrpcStatus(status);
    if (last.ok()) {
      spdlog::debug("epoch {} rank {}: reported {}; cluster is {}", work.epoch, work.rank,
                    PhaseName(phase), PhaseName(response.cluster_phase()));
      return last;
    }
    if (EpochOver(last) || stopping()) return last;
    const absl::Duration delay = backoff.NextDelay();
    if (DaemonErrorCode(last.code()).on_session_call == AgentAction::kWaitForDaemon) {
      --attempt;
      spdlog::warn("epoch {} rank {}: report of {} waits for the daemon: {}", work.epoch,
                   work.rank, PhaseName(phase), last.ToString());
    } else {
      spdlog::warn("epoch {} rank {}: report of {} failed (attempt {} of {}): {}", work.epoch,
                   work.rank, PhaseName(phase), attempt, options_.report_attempts,
                   last.ToString());
    }
    if (attempt < options_.report_attempts && SleepOrStop(delay)) return last;
  }
  spdlog::error("epoch {} rank {}: giving up reporting {}: {}", work.epoch, work.rank,
                PhaseName(phase), last.ToString());
  return last;
}

}  // namespace splitd::worker
