#ifndef SPLITD_WORKER_DEFAULT_GROUP_BUILDERS_H_
#define SPLITD_WORKER_DEFAULT_GROUP_BUILDERS_H_

#include <cstdint>
#include <map>
#include <string>

#include "worker/group_builder_factory.h"
#include "worker/nccl/nccl_library.h"

namespace splitd::worker {

// Which device backends to try.
struct BackendOptions {
  bool try_nccl = true;                 // --nccl_library "" turns NCCL off
  nccl::LibraryOptions nccl_library;    // --nccl_library, --cudart_library
  bool nccl_nonblocking = false;        // --nccl_nonblocking
  bool nccl_eager_connect = false;      // --nccl_eager_connect (NCCL_RUNTIME_CONNECT=0)
  bool nccl_serial_validation = false;  // --nccl_serial_validation
  // Device to make the CUDA context of right away, in the background, so that the first plan
  // does not pay for it; -1 for none.
  int warm_device = -1;
};

// What this process can form, found out once at start.
struct Backends {
  GroupBuilderFactories factories;                 // "cpu:gloo", and "cuda:nccl" when loaded
  std::map<std::string, std::string> unavailable;  // backend -> why not
  std::string device_type = "cpu";                 // "cuda" when NCCL loaded
  int64_t nccl_version = 0;
  int64_t device_count = 0;
};

// The backends this build of splitd-agent can form: always "cpu:gloo"; "cuda:nccl" when NCCL
// and the CUDA runtime load at run time and a device is visible. Kept apart from the Agent so
// that the lifecycle code never names a library and tests can hand in fakes.
Backends DefaultBackends(const BackendOptions& options);

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_DEFAULT_GROUP_BUILDERS_H_
