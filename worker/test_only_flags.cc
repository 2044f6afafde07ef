#include "worker/test_only_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, inject_fault, "",
          "tests only: \"fingerprint\" makes the agent derive a wrong plan fingerprint");
