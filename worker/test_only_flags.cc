#include "worker/test_only_flags.h"

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::string, inject_fault, "",
          "tests only: \"fingerprint\" makes the agent derive a wrong plan fingerprint");

namespace splitd::worker {

absl::StatusOr<FaultInjection> FaultInjectionFromFlags() {
  FaultInjection faults;
  const std::string fault = absl::GetFlag(FLAGS_inject_fault);
  if (fault == "fingerprint") {
    faults.corrupt_fingerprint = true;
  } else if (!fault.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--inject_fault must be \"fingerprint\" or empty, got \"", fault, "\""));
  }
  return faults;
}

}  // namespace splitd::worker
