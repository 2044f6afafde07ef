#ifndef SPLITD_WORKER_FAULT_INJECTION_H_
#define SPLITD_WORKER_FAULT_INJECTION_H_

namespace splitd::worker {

// Faults a test asks an agent to inject (--inject_fault, worker/test_only_flags.h; or set
// directly by in-process tests). Kept apart from AgentOptions so that the production
// configuration carries no test switches; the default injects nothing.
struct FaultInjection {
  // Alter the fingerprint the agent derives from each plan, so that the derivation fails with a
  // mismatch as if this agent had computed another plan (the mismatch path end to end).
  bool corrupt_fingerprint = false;
};

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_FAULT_INJECTION_H_
