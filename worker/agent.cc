// The agent's construction, Stop() and the plan loop Run() drives; the session with the daemon
// is in agent_session.cc, the forming of an epoch in agent_epoch.cc, the reports in
// agent_report.cc and the hand-over to the workload in agent_hand_over.cc.

#include "worker/agent.h"

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_format.h"
#include "spdlog/spdlog.h"

namespace splitd::worker {
namespace {

// A fresh 128-bit random id per process start, as hex.
std::string NewIncarnation() {
  absl::BitGen gen;
  return absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(gen), absl::Uniform<uint64_t>(gen));
}

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
             GroupBuilderFactories factories, FaultInjection faults)
    : Agent(std::move(options), v1::AgentService::NewStub(channel), std::move(factories), faults) {}

Agent::Agent(AgentOptions options, std::unique_ptr<v1::AgentService::StubInterface> stub,
             GroupBuilderFactories factories, FaultInjection faults)
    : options_(std::move(options)),
      stub_(std::move(stub)),
      factories_(std::move(factories)),
      faults_(faults),
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

grpc::Status Agent::Invoke(absl::Duration timeout,
                           absl::FunctionRef<grpc::Status(grpc::ClientContext*)> call) {
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

}  // namespace splitd::worker
