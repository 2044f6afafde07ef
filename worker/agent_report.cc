// The agent's reports to the daemon: progress sent without waiting, the final READY or FAILED
// with retries, and the failure path of an epoch.

#include <algorithm>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/error_table.h"
#include "common/grpc_status.h"
#include "spdlog/spdlog.h"
#include "worker/agent.h"
#include "worker/agent_internal.h"
#include "worker/backoff.h"

namespace splitd::worker {

using agent_internal::EpochOver;

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
          spdlog::debug("epoch {} rank {}: progress report {} not taken: {}", call->request.epoch(),
                        call->request.rank(), PhaseName(call->request.phase()),
                        status.error_message());
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
      spdlog::warn("epoch {} rank {}: report of {} waits for the daemon: {}", work.epoch, work.rank,
                   PhaseName(phase), last.ToString());
    } else {
      spdlog::warn("epoch {} rank {}: report of {} failed (attempt {} of {}): {}", work.epoch,
                   work.rank, PhaseName(phase), attempt, options_.report_attempts, last.ToString());
    }
    if (attempt < options_.report_attempts && SleepOrStop(delay)) return last;
  }
  spdlog::error("epoch {} rank {}: giving up reporting {}: {}", work.epoch, work.rank,
                PhaseName(phase), last.ToString());
  return last;
}

}  // namespace splitd::worker
