#include "worker/default_group_builders.h"

#include <cstdlib>
#include <memory>
#include <thread>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"
#include "worker/gloo/gloo_group_builder.h"
#include "worker/nccl/nccl_group_builder.h"

namespace splitd::worker {

Backends DefaultBackends(const BackendOptions& options) {
  Backends backends;
  backends.factories["cpu:gloo"] = [] { return MakeGlooGroupBuilder(); };
  if (!options.try_nccl) {
    backends.unavailable["cuda:nccl"] =
        "backend unavailable: NCCL is turned off (--nccl_library "
        "is empty)";
    return backends;
  }
  if (options.nccl_eager_connect) {
    // Read by NCCL when a communicator is created; an operator's own setting wins.
    setenv("NCCL_RUNTIME_CONNECT", "0", /*overwrite=*/0);
  }
  absl::StatusOr<std::shared_ptr<const nccl::NcclLibrary>> library =
      nccl::NcclLibrary::Load(options.nccl_library);
  if (!library.ok()) {
    spdlog::info("cuda:nccl: {}; forming Gloo groups only",
                 std::string(library.status().message()));
    backends.unavailable["cuda:nccl"] = std::string(library.status().message());
    return backends;
  }
  std::shared_ptr<const nccl::NcclLibrary> loaded = *std::move(library);
  spdlog::info("cuda:nccl: NCCL {} from {}, CUDA runtime {}, {} device(s)",
               loaded->version_string(), loaded->nccl_path(), loaded->cudart_path(),
               loaded->device_count());
  backends.device_type = "cuda";
  backends.nccl_version = loaded->version();
  backends.device_count = loaded->device_count();
  if (options.warm_device >= 0 && options.warm_device < loaded->device_count()) {
    // The CUDA context of the device (hundreds of milliseconds) is made while the agent waits
    // for its plan; the builder's own cudaSetDevice then finds it ready.
    std::thread([loaded, device = options.warm_device] {
      const absl::Time start = absl::Now();
      const nccl::CudaError set = loaded->cuda().SetDevice(device);
      const nccl::CudaError made = set == 0 ? loaded->cuda().Free(nullptr) : set;
      if (made != 0) {
        spdlog::warn("cuda:nccl: preparing device {}: {}", device, loaded->DescribeCuda(made));
      } else {
        spdlog::info("cuda:nccl: device {} ready in {:.1f} ms", device,
                     absl::ToDoubleMilliseconds(absl::Now() - start));
      }
    }).detach();
  }
  NcclBuilderOptions builder_options;
  builder_options.nonblocking = options.nccl_nonblocking;
  builder_options.serial_validation = options.nccl_serial_validation;
  backends.factories["cuda:nccl"] = [loaded, builder_options] {
    return MakeNcclGroupBuilder(loaded, builder_options);
  };
  return backends;
}

}  // namespace splitd::worker
