#include "worker/plan_derivation.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "plan/split_plan.h"
#include "plan/split_planner.h"

namespace splitd::worker {
namespace {

constexpr int64_t kDefaultAllreduceElements = 1024;

// Flips the first hex digit, so the digest stays well-formed but can never match.
std::string Corrupt(std::string fingerprint) {
  if (fingerprint.empty()) return "0";
  char& c = fingerprint[0];
  c = (c == '0') ? 'f' : '0';
  return fingerprint;
}

// What every backend's world of `out` starts from, before its kinds and groups.
WorldSpec BaseWorldSpec(const DerivedPlan& out, const v1::Validation& validation,
                        const DerivationOptions& options) {
  WorldSpec spec;
  spec.cluster = out.cluster;
  spec.epoch = out.epoch;
  spec.rank = out.rank;
  spec.world_size = out.world_size;
  spec.method = out.method;
  spec.allreduce_elements = validation.allreduce_elements() > 0 ? validation.allreduce_elements()
                                                                : kDefaultAllreduceElements;
  spec.bandwidth_bytes = validation.bandwidth_bytes();
  spec.host = options.host;
  spec.timeout = options.timeout;
  spec.device_index = options.device_index;
  return spec;
}

// DerivePlan, with the derived fingerprint altered when `corrupt_fingerprint`.
absl::StatusOr<DerivedPlan> Derive(const v1::WatchPlanResponse& message,
                                   const DerivationOptions& options, bool corrupt_fingerprint,
                                   std::string* derived_fingerprint) {
  const v1::Plan& plan = message.plan();
  ASSIGN_OR_RETURN(plan::SplitPlan derived,
                   plan::SplitPlanner::Build(plan.topology(), plan.epoch()));
  if (corrupt_fingerprint) derived.fingerprint = Corrupt(derived.fingerprint);
  if (derived_fingerprint != nullptr) *derived_fingerprint = derived.fingerprint;

  const int64_t rank = message.rank();
  if (derived.fingerprint != plan.fingerprint()) {
    return absl::FailedPreconditionError(
        absl::StrCat("rank ", rank, ": plan fingerprint mismatch at epoch ", plan.epoch(),
                     ": derived ", derived.fingerprint, ", daemon sent ", plan.fingerprint()));
  }
  if (rank < 0 || rank >= derived.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank must be in [0, ", derived.world_size, "), got ", rank));
  }

  DerivedPlan out;
  out.cluster = derived.cluster;
  out.epoch = derived.epoch;
  out.rank = static_cast<int>(rank);
  out.world_size = static_cast<int>(derived.world_size);
  out.method = derived.method;
  out.fingerprint = derived.fingerprint;
  if (!derived.topology.readiness().empty()) out.readiness = derived.topology.readiness();
  out.preflight = !derived.topology.has_preflight() || derived.topology.preflight();

  const WorldSpec base = BaseWorldSpec(out, derived.topology.validation(), options);
  auto world_of = [&](const std::string& backend) -> WorldSpec& {
    for (BackendWorld& world : out.worlds) {
      if (world.backend == backend) return world.spec;
    }
    BackendWorld& world = out.worlds.emplace_back();
    world.backend = backend;
    world.spec = base;
    return world.spec;
  };

  for (size_t k = 0; k < derived.kinds.size(); ++k) {
    const plan::GroupKind& kind = derived.kinds[k];
    const std::vector<std::string> parts = BackendParts(kind.backend);
    // Every backend joins the list even when this rank has no group of the kind.
    for (const std::string& part : parts) {
      world_of(part).kinds.emplace_back(static_cast<int>(k), kind.name);
    }

    out.layout.push_back(KindLayout{kind.name, kind.backend, kind.ranks, kind.offsets});

    const int32_t group_index = kind.group_of_rank[static_cast<size_t>(rank)];
    if (group_index < 0) continue;
    GroupAssignment assignment;
    assignment.kind = kind.name;
    assignment.kind_index = static_cast<int>(k);
    assignment.group_index = group_index;
    const absl::Span<const int32_t> members = kind.group(group_index);
    assignment.members.assign(members.begin(), members.end());
    assignment.local_rank = static_cast<int>(
        std::find(members.begin(), members.end(), static_cast<int32_t>(rank)) - members.begin());
    for (const std::string& part : parts) world_of(part).groups.push_back(assignment);
    out.groups.push_back(KindGroup{std::move(assignment), kind.backend});
  }
  return out;
}

}  // namespace

std::vector<std::string> BackendParts(const std::string& backend) {
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(backend, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (!part.empty()) parts.emplace_back(part);
  }
  return parts;
}

absl::StatusOr<DerivedPlan> DerivePlan(const v1::WatchPlanResponse& message,
                                       const DerivationOptions& options,
                                       std::string* derived_fingerprint) {
  return Derive(message, options, /*corrupt_fingerprint=*/false, derived_fingerprint);
}

absl::StatusOr<DerivedPlan> DerivePlanWithCorruptedFingerprint(const v1::WatchPlanResponse& message,
                                                               const DerivationOptions& options,
                                                               std::string* derived_fingerprint) {
  return Derive(message, options, /*corrupt_fingerprint=*/true, derived_fingerprint);
}

}  // namespace splitd::worker
