#ifndef SPLITD_WORKER_PLAN_DERIVATION_H_
#define SPLITD_WORKER_PLAN_DERIVATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "splitd/v1/agent_service.pb.h"
#include "worker/group_builder.h"

namespace splitd::worker {

// How the agent derives its groups from a plan message.
struct DerivationOptions {
  std::string host = "127.0.0.1";              // copied into every WorldSpec
  absl::Duration timeout = absl::Seconds(60);  // copied into every WorldSpec
  int device_index = 0;                        // copied into every WorldSpec
};

// One of this rank's groups, with the kind's full backend string (for the plan file).
struct KindGroup {
  GroupAssignment assignment;
  std::string backend;  // e.g. "cpu:gloo,cuda:nccl"
};

// The world one backend ("cpu:gloo", "cuda:nccl") must bootstrap, with this rank's groups on it.
struct BackendWorld {
  std::string backend;
  WorldSpec spec;
};

// Every group of one kind of the epoch: what the workload needs to create the kind without
// gathering the layout over the world first.
struct KindLayout {
  std::string kind;
  std::string backend;           // e.g. "cpu:gloo,cuda:nccl"
  std::vector<int32_t> ranks;    // the groups back to back, in canonical order
  std::vector<int64_t> offsets;  // group i is ranks[offsets[i], offsets[i + 1])
};

// What one agent forms at one epoch, derived from the generator and checked against the
// daemon's fingerprint.
struct DerivedPlan {
  std::string cluster;
  int64_t epoch = 0;
  int rank = 0;
  int world_size = 0;
  std::string method;
  std::string fingerprint;        // the derived one; equal to the daemon's
  std::vector<KindGroup> groups;  // this rank's groups, in kind order; kinds it is not in omitted
  // Every backend part any kind of the plan uses, in order of first use: the same list on every
  // rank, since each world is collective over all ranks (a rank with no group on a backend still
  // takes part in its world).
  std::vector<BackendWorld> worlds;
  // Every kind's groups, in kind order (the same on every rank).
  std::vector<KindLayout> layout;
  // The topology's `readiness` ("agent" when unset) and `preflight` (true when unset).
  std::string readiness = "agent";
  bool preflight = true;
};

// Derives this rank's groups from one WatchPlan message: rebuilds the plan from
// `plan.topology` and `plan.epoch` with the same planner the daemon runs, checks that its
// fingerprint equals `plan.fingerprint` and splits every kind's backend string into parts.
// FAILED_PRECONDITION naming the rank and both digests on a fingerprint mismatch (nothing may be
// formed then); INVALID_ARGUMENT for a rank outside the world or a plan the planner refuses.
// When `derived_fingerprint` is not null it receives the derived digest whenever the planner
// accepted the topology, mismatch or not, so that the failure report can carry it.
absl::StatusOr<DerivedPlan> DerivePlan(const v1::WatchPlanResponse& message,
                                       const DerivationOptions& options,
                                       std::string* derived_fingerprint = nullptr);

// Fault injection for tests of the mismatch path (FaultInjection::corrupt_fingerprint,
// --inject_fault=fingerprint): DerivePlan with the derived fingerprint altered before it is
// checked (still 64 hex digits, never the daemon's), so the derivation fails as if this agent had
// computed another plan.
absl::StatusOr<DerivedPlan> DerivePlanWithCorruptedFingerprint(
    const v1::WatchPlanResponse& message, const DerivationOptions& options,
    std::string* derived_fingerprint = nullptr);

// The parts of a backend string: "cpu:gloo,cuda:nccl" -> {"cpu:gloo", "cuda:nccl"}.
std::vector<std::string> BackendParts(const std::string& backend);

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_PLAN_DERIVATION_H_
