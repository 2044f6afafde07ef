// The agent's plan loop, on Run()'s thread: a new plan lets go of the held epoch, is derived
// and checked, and its groups are brought up (by a fresh bootstrap or by shrinking the held
// world), formed, validated and reported.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"
#include "worker/agent.h"
#include "worker/agent_internal.h"
#include "worker/plan_derivation.h"

namespace splitd::worker {
namespace {

using agent_internal::EpochOver;
using agent_internal::Millis;

// One GroupReport per (kind, backend) this rank takes part in; filled in as phases pass.
void AddGroupReports(const DerivedPlan& derived, std::vector<v1::GroupReport>* groups) {
  for (const BackendWorld& world : derived.worlds) {
    for (const GroupAssignment& group : world.spec.groups) {
      v1::GroupReport& report = groups->emplace_back();
      report.set_kind(group.kind);
      report.set_backend(world.backend);
      report.set_phase(v1::PHASE_BOOTSTRAPPING);
    }
  }
}

// Takes the validation `results` of `backend` into its groups of `groups`: figures, phase and
// error. The first error of the rank goes to `first_error` while that is still empty.
void TakeValidation(const std::string& backend,
                    const absl::StatusOr<std::vector<GroupValidation>>& results, int64_t rank,
                    std::vector<v1::GroupReport>* groups, std::string* first_error) {
  for (v1::GroupReport& group : *groups) {
    if (group.backend() != backend) continue;
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
    if (!error.empty() && first_error->empty()) {
      *first_error = absl::StrCat("rank ", rank, ": ", group.kind(), " (", backend, "): ", error);
    }
  }
}

// Logs every group's outcome and the epoch's timings.
void LogOutcome(const std::string& prefix, v1::Phase phase,
                const std::vector<v1::GroupReport>& groups, const v1::PhaseTimings& timings) {
  for (const v1::GroupReport& group : groups) {
    spdlog::info(
        "{}: {} ({}) {}: all-reduce {} in {:.1f} us{}", prefix, group.kind(), group.backend(),
        PhaseName(group.phase()), group.allreduce_value(), group.latency_us(),
        group.bus_bandwidth_gbps() > 0 ? absl::StrFormat(", %.2f GB/s", group.bus_bandwidth_gbps())
                                       : std::string());
  }
  spdlog::info(
      "{}: {} — bootstrap {:.1f} ms, split {:.1f} ms, validate {:.1f} ms, groups ready "
      "{:.1f} ms after the plan",
      prefix, PhaseName(phase), timings.bootstrap_ms(), timings.split_ms(), timings.validate_ms(),
      timings.groups_ready_ms());
}

}  // namespace

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

Agent::ShrinkSource Agent::LetGoOfHeldEpoch(const v1::WatchPlanResponse& message) {
  const v1::Plan& plan = message.plan();
  // Any new epoch may follow a lost member, and a destroy may wait on a dead peer: the device
  // communicators of the held epoch are aborted, never destroyed, in the background so that the
  // new world does not wait for it; except, when the plan only removes ranks from the held
  // epoch (Plan.shrinks_epoch), those this rank can shrink into the new world instead.
  ShrinkSource shrink;
  shrink.epoch = plan.shrinks_epoch();
  shrink.previous_ranks.assign(plan.previous_ranks().begin(), plan.previous_ranks().end());
  const bool shrinks_held = shrink.epoch != 0 && held_.has_value() && held_->epoch == shrink.epoch;
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
      AbortDeviceBuilders(&builders_, absl::StrCat("epoch ", plan.epoch(),
                                                   shrinks_held ? ": no rank in the shrunk world"
                                                                : ": a new epoch"));
    }
    ReleaseBuilders();
  }
  return shrink;
}

std::optional<DerivedPlan> Agent::DeriveOrFail(const v1::WatchPlanResponse& message,
                                               EpochWork* work) {
  const v1::Plan& plan = message.plan();
  DerivationOptions derivation;
  derivation.host = options_.host;
  derivation.timeout = options_.timeout;
  derivation.device_index =
      static_cast<int>(options_.device_index >= 0 ? options_.device_index : options_.local_index);
  std::string derived_fingerprint;
  absl::StatusOr<DerivedPlan> derived =
      faults_.corrupt_fingerprint
          ? DerivePlanWithCorruptedFingerprint(message, derivation, &derived_fingerprint)
          : DerivePlan(message, derivation, &derived_fingerprint);
  if (!derived_fingerprint.empty()) work->fingerprint = derived_fingerprint;
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
    FailEpoch(work, &bare, error);
    return std::nullopt;
  }
  return *std::move(derived);
}

void Agent::HandlePlan(const v1::WatchPlanResponse& message) {
  const v1::Plan& plan = message.plan();
  ShrinkSource shrink = LetGoOfHeldEpoch(message);
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

  std::optional<DerivedPlan> derived = DeriveOrFail(message, &work);
  if (!derived.has_value()) return;
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

std::unique_ptr<GroupBuilder> Agent::TakeShrinkCandidate(const HeldBuilder& held,
                                                         ShrinkSource* shrink, std::string* why,
                                                         int* held_size) {
  std::unique_ptr<GroupBuilder> candidate;
  for (auto it = shrink->builders.begin(); it != shrink->builders.end(); ++it) {
    if (it->backend == held.backend) {
      candidate = std::move(it->builder);
      *held_size = it->spec.world_size;
      shrink->builders.erase(it);
      break;
    }
  }
  if (candidate == nullptr) {
    *why = absl::StrCat("this rank holds no ", held.backend, " world of epoch ", shrink->epoch);
  } else if (!candidate->CanShrink()) {
    *why = absl::StrCat(held.backend, " cannot shrink here");
  } else if (static_cast<int64_t>(shrink->previous_ranks.size()) != held.spec.world_size) {
    *why = absl::StrCat("the plan maps ", shrink->previous_ranks.size(), " of ",
                        held.spec.world_size, " ranks to epoch ", shrink->epoch);
  }
  return candidate;
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
  std::string why;
  int held_size = 0;
  std::unique_ptr<GroupBuilder> candidate = TakeShrinkCandidate(*held, shrink, &why, &held_size);
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
      spdlog::info(
          "{}: {} world shrunk from {} to {} ranks in {:.1f} ms (vote {:.1f} ms, "
          "shrink {:.1f} ms; no fresh bootstrap)",
          prefix, held->backend, held_size, held->spec.world_size, Millis(absl::Now() - start),
          Millis(voted - start), Millis(absl::Now() - voted));
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
    spdlog::info(
        "{}: {} world of {} connected by a fresh bootstrap in {:.1f} ms ({:.1f} ms "
        "since the shrink vote began)",
        prefix, held->backend, held->spec.world_size, Millis(absl::Now() - fresh),
        Millis(absl::Now() - start));
  }
  return status;
}

void Agent::FormEpoch(const DerivedPlan& derived, EpochWork* work, ShrinkSource* shrink) {
  AddGroupReports(derived, &work->groups);
  const std::string prefix = absl::StrCat("epoch ", work->epoch, " rank ", work->rank);
  if (!CheckBackends(derived, work)) return;
  if (!SendProgress(work, v1::PHASE_BOOTSTRAPPING)) return;
  // Kept for the whole epoch; Stop() and a newer plan cancel it through `rendezvous_`.
  const std::shared_ptr<GrpcRendezvousClient> rendezvous = OpenRendezvous(work->epoch);
  if (Superseded(work->epoch)) return AbandonEpoch(prefix, "before bootstrap");
  const std::optional<absl::Time> bootstrapped =
      ConnectWorlds(derived, work, shrink, rendezvous.get(), prefix);
  if (!bootstrapped.has_value() || !SendProgress(work, v1::PHASE_SPLITTING)) return;
  const std::optional<absl::Time> formed =
      FormAllGroups(derived, work, rendezvous.get(), *bootstrapped, prefix);
  if (!formed.has_value() || !SendProgress(work, v1::PHASE_VALIDATING)) return;
  std::string first_error;
  if (!ValidateAllGroups(work, *formed, prefix, &first_error)) return;
  FinishEpoch(derived, work, prefix, first_error);
}

bool Agent::CheckBackends(const DerivedPlan& derived, EpochWork* work) {
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
      return false;
    }
  }
  return true;
}

bool Agent::SendProgress(EpochWork* work, v1::Phase phase) {
  // Progress goes out without waiting for the answer, so it costs the critical path nothing;
  // the daemon never lets a late progress report move a rank back. An epoch the daemon has left
  // shows up as ABORTED on the rendezvous or on the final report.
  SetPhase(*work, phase, "");
  for (v1::GroupReport& group : work->groups) group.set_phase(phase);
  ReportProgress(*work, phase);
  return !stopping();
}

std::shared_ptr<GrpcRendezvousClient> Agent::OpenRendezvous(int64_t epoch) {
  const v1::MemberCredentials credentials = Credentials();
  auto rendezvous =
      std::make_shared<GrpcRendezvousClient>(stub_.get(), credentials, epoch, options_.rpc_timeout);
  absl::MutexLock lock(&mu_);
  rendezvous_ = rendezvous;
  return rendezvous;
}

void Agent::AbandonEpoch(const std::string& prefix, const char* where) {
  spdlog::info("{}: abandoning the epoch {} ({})", prefix, where,
               stopping() ? "stopping" : "a newer plan arrived");
  // Peers of a half-formed epoch may be gone: abort, never wait on them.
  AbortDeviceBuilders(&builders_, absl::StrCat(prefix, ": abandoned"));
  ReleaseBuilders();
}

std::optional<absl::Time> Agent::ConnectWorlds(const DerivedPlan& derived, EpochWork* work,
                                               ShrinkSource* shrink, RendezvousClient* rendezvous,
                                               const std::string& prefix) {
  // Builders come up with their worlds (ShrinkOrBootstrap), in plan order on every rank.
  for (const BackendWorld& world : derived.worlds) {
    builders_.push_back(HeldBuilder{world.backend, world.spec, nullptr});
  }
  for (HeldBuilder& held : builders_) {
    const absl::Status status = ShrinkOrBootstrap(&held, shrink, rendezvous, prefix);
    if (Superseded(work->epoch)) {
      AbandonEpoch(prefix, "during bootstrap");
      return std::nullopt;
    }
    if (!status.ok()) {
      FailEpoch(work, &derived,
                absl::StrCat("rank ", work->rank, ": backend ", held.backend,
                             ": bootstrap of the world failed: ", status.ToString()));
      return std::nullopt;
    }
  }
  const absl::Time bootstrapped = absl::Now();
  work->timings.set_bootstrap_ms(Millis(bootstrapped - work->received));
  work->timings.set_plan_received_unix_ms(absl::ToUnixMicros(work->received) / 1e3);
  work->timings.set_world_connected_unix_ms(absl::ToUnixMicros(bootstrapped) / 1e3);
  return bootstrapped;
}

std::optional<absl::Time> Agent::FormAllGroups(const DerivedPlan& derived, EpochWork* work,
                                               RendezvousClient* rendezvous,
                                               absl::Time bootstrapped, const std::string& prefix) {
  for (HeldBuilder& held : builders_) {
    const absl::Status status = held.builder->FormGroups(held.spec, rendezvous);
    if (Superseded(work->epoch)) {
      AbandonEpoch(prefix, "while forming groups");
      return std::nullopt;
    }
    if (!status.ok()) {
      FailEpoch(work, &derived,
                absl::StrCat("rank ", work->rank, ": backend ", held.backend, ": ", derived.method,
                             " of the groups failed: ", status.ToString()));
      return std::nullopt;
    }
  }
  const absl::Time formed = absl::Now();
  work->timings.set_split_ms(Millis(formed - bootstrapped));
  spdlog::info("{}: groups formed ({}) in {:.1f} ms", prefix, derived.method,
               work->timings.split_ms());
  return formed;
}

bool Agent::ValidateAllGroups(EpochWork* work, absl::Time formed, const std::string& prefix,
                              std::string* first_error) {
  for (HeldBuilder& held : builders_) {
    absl::StatusOr<std::vector<GroupValidation>> results = held.builder->Validate(held.spec);
    if (Superseded(work->epoch)) {
      AbandonEpoch(prefix, "during validation");
      return false;
    }
    TakeValidation(held.backend, results, work->rank, &work->groups, first_error);
  }
  const absl::Time validated = absl::Now();
  work->timings.set_validate_ms(Millis(validated - formed));
  work->timings.set_groups_ready_ms(Millis(validated - work->received));
  work->timings.set_groups_ready_unix_ms(absl::ToUnixMicros(validated) / 1e3);
  return true;
}

void Agent::FinishEpoch(const DerivedPlan& derived, EpochWork* work, const std::string& prefix,
                        const std::string& first_error) {
  const v1::Phase phase = first_error.empty() ? v1::PHASE_READY : v1::PHASE_FAILED;
  SetPhase(*work, phase, first_error);
  LogOutcome(prefix, phase, work->groups, work->timings);
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

}  // namespace splitd::worker
