#ifndef SPLITD_WORKER_TEST_ONLY_FLAGS_H_
#define SPLITD_WORKER_TEST_ONLY_FLAGS_H_

#include <string>

#include "absl/flags/declare.h"

// Flags for tests only, defined apart from worker/main.cc so that --help does not list them
// (--helpfull does).

// --inject_fault=fingerprint: the agent alters the fingerprint it derives, to exercise the
// mismatch path end to end. Empty: no fault.
ABSL_DECLARE_FLAG(std::string, inject_fault);

#endif  // SPLITD_WORKER_TEST_ONLY_FLAGS_H_
