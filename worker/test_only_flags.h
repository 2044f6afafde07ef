#ifndef SPLITD_WORKER_TEST_ONLY_FLAGS_H_
#define SPLITD_WORKER_TEST_ONLY_FLAGS_H_

#include <string>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "worker/fault_injection.h"

// Flags for tests only, defined apart from worker/main.cc so that --help does not list them
// (--helpfull does).

// --inject_fault=fingerprint: the agent alters the fingerprint it derives, to exercise the
// mismatch path end to end. Empty: no fault.
ABSL_DECLARE_FLAG(std::string, inject_fault);

namespace splitd::worker {

// The faults --inject_fault asks for; INVALID_ARGUMENT naming the flag on a value it does not
// know.
absl::StatusOr<FaultInjection> FaultInjectionFromFlags();

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_TEST_ONLY_FLAGS_H_
