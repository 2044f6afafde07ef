#ifndef SPLITD_PLAN_PLAN_FINGERPRINT_H_
#define SPLITD_PLAN_PLAN_FINGERPRINT_H_

#include <string>

#include "plan/split_plan.h"

namespace splitd::plan {

// SHA-256 over the canonical encoding of a plan (documented in docs/plan-format.md): cluster,
// epoch, world size, method, validation and node settings and, per kind in order, name, backend,
// mesh, local, generator dims and every group's members in canonical order. Streams the encoding
// into the hash without materializing it. Pure.
class PlanFingerprint {
 public:
  // Lowercase hex digest of `plan` (its `fingerprint` field is ignored).
  static std::string Compute(const SplitPlan& plan);
};

}  // namespace splitd::plan

#endif  // SPLITD_PLAN_PLAN_FINGERPRINT_H_
