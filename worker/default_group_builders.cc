#include "worker/default_group_builders.h"

#include <memory>
#include <utility>

#include "spdlog/spdlog.h"
#include "worker/gloo/gloo_group_builder.h"
#include "worker/nccl/nccl_group_builder.h"

namespace splitd::worker {

Backends DefaultBackends(const BackendOptions& options) {
  Backends backends;
  backends.factories["cpu:gloo"] = [] { return MakeGlooGroupBuilder(); };
  if (!options.try_nccl) {
    backends.unavailable["cuda:nccl"] = "backend unavailable: NCCL is turned off (--nccl_library "
                                        "is empty)";
    return backends;
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
  NcclBuilderOptions builder_options;
  builder_options.nonblocking = options.nccl_nonblocking;
  backends.factories["cuda:nccl"] = [loaded, builder_options] {
    return MakeNcclGroupBuilder(loaded, builder_options);
  };
  return backends;
}

}  // namespace splitd::worker
