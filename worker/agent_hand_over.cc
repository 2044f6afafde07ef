// The agent's hand-over to its workload: the plan file, the workload endpoint that serves the same
// document with the epoch's full layout, and the path without pre-flight communicators.

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spdlog/spdlog.h"
#include "worker/agent.h"
#include "worker/agent_internal.h"

namespace splitd::worker {
namespace {

// The plan file's document for one epoch's outcome.
PlanFile MakePlanFile(const std::string& cluster, const std::string& socket, int64_t rank,
                      int64_t epoch, const std::string& fingerprint, const DerivedPlan* derived,
                      const std::string& state, const std::string& error,
                      const v1::PhaseTimings& timings) {
  PlanFile file;
  file.cluster = cluster;
  file.socket = socket;
  file.rank = rank;
  file.epoch = epoch;
  file.fingerprint = fingerprint;
  file.state = state;
  file.error = error;
  if (derived != nullptr) {
    file.world_size = derived->world_size;
    file.method = derived->method;
    if (!derived->layout.empty()) {
      file.readiness = derived->readiness;
      file.preflight = derived->preflight;
    }
    for (const KindGroup& group : derived->groups) {
      file.groups.push_back(PlanFile::Group{group.assignment.kind, group.assignment.members,
                                            group.assignment.local_rank,
                                            group.assignment.group_index, group.backend});
    }
    for (const KindLayout& kind : derived->layout) {
      PlanFile::KindLayout& out = file.layout.emplace_back();
      out.kind = kind.kind;
      out.backend = kind.backend;
      for (size_t g = 0; g + 1 < kind.offsets.size(); ++g) {
        out.groups.emplace_back(kind.ranks.begin() + kind.offsets[g],
                                kind.ranks.begin() + kind.offsets[g + 1]);
      }
    }
  }
  file.bootstrap_ms = timings.bootstrap_ms();
  file.split_ms = timings.split_ms();
  file.validate_ms = timings.validate_ms();
  file.groups_ready_ms = timings.groups_ready_ms();
  return file;
}

}  // namespace

void Agent::WritePlanFile(const EpochWork& work, const DerivedPlan* derived,
                          const std::string& state, const std::string& error) {
  const PlanFile file =
      MakePlanFile(options_.cluster, options_.workload_socket, work.rank, work.epoch,
                   work.fingerprint, derived, state, error, work.timings);
  if (bridge_ != nullptr) {
    bridge_->Publish(HandOver{work.epoch, work.rank, state, work.fingerprint, file.ToJson(true)});
  }
  if (options_.plan_file.empty()) return;
  const absl::Status written = file.Write(options_.plan_file);
  if (!written.ok()) {
    spdlog::error("epoch {}: cannot write the plan file: {}", work.epoch, written.ToString());
    return;
  }
  spdlog::info("epoch {}: plan file {} written ({})", work.epoch, options_.plan_file, state);
}

void Agent::HandOverWithoutPreflight(const DerivedPlan& derived, EpochWork* work) {
  const std::string prefix = absl::StrCat("epoch ", work->epoch, " rank ", work->rank);
  spdlog::info("{}: preflight off: handing the plan to the workload without forming groups",
               prefix);
  const absl::Status reported = Report(*work, v1::PHASE_READY, "");
  if (agent_internal::EpochOver(reported)) {
    spdlog::info("{}: the daemon has moved past this epoch; dropping it", prefix);
    return;
  }
  SetPhase(*work, v1::PHASE_READY, "");
  WritePlanFile(*work, &derived, "READY", "");
}

absl::Status Agent::StartWorkloadEndpoint() {
  if (options_.workload_socket.empty()) return absl::OkStatus();
  bridge_ = std::make_unique<WorkloadBridge>(
      options_.cluster, options_.rpc_timeout, stub_.get(),
      [this]() -> std::optional<v1::MemberCredentials> {
        absl::MutexLock lock(&mu_);
        if (!session_valid_) return std::nullopt;
        return credentials_;
      },
      [this]() {
        absl::MutexLock lock(&mu_);
        return std::make_pair(std::string(PhaseName(state_.phase)), state_.member_id);
      });
  workload_api_ = std::make_unique<WorkloadApi>(bridge_.get());
  UnixHttpServer::Options server;
  server.path = options_.workload_socket;
  server.mode = options_.workload_socket_mode;
  endpoint_ = std::make_unique<UnixHttpServer>(
      server, [api = workload_api_.get()](const HttpRequest& request, const ClientGone& gone) {
        return api->Handle(request, gone);
      });
  if (absl::Status started = endpoint_->Start(); !started.ok()) {
    endpoint_.reset();
    return absl::Status(started.code(),
                        absl::StrCat("workload endpoint (--workload_socket): ", started.message()));
  }
  spdlog::info("workload endpoint on {} (mode {:04o})", options_.workload_socket,
               options_.workload_socket_mode);
  return absl::OkStatus();
}

void Agent::StopWorkloadEndpoint() {
  if (bridge_ != nullptr) bridge_->Shutdown();
  if (endpoint_ != nullptr) endpoint_->Stop();
}

}  // namespace splitd::worker
