// The "cuda:nccl" builder's world: one communicator over every rank, created from the unique id
// rank 0 publishes through the rendezvous space.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"
#include "worker/nccl/color_key.h"
#include "worker/nccl/nccl_api.h"
#include "worker/nccl/nccl_group_builder_internal.h"
#include "worker/nccl/nccl_library.h"
#include "worker/rendezvous_client.h"

namespace splitd::worker::nccl_internal {
namespace {

constexpr char kWorldIdKey[] = "nccl/world/id";

}  // namespace

absl::Status NcclGroupBuilder::BootstrapWorld(const WorldSpec& spec, RendezvousClient* rendezvous) {
  if (library_ == nullptr) return absl::FailedPreconditionError("NCCL library is not loaded");
  if (world_ != nullptr || stream_created_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "world of epoch ", epoch_, " is still held; Release before bootstrapping again"));
  }
  if (rendezvous == nullptr) return absl::InvalidArgumentError("rendezvous is null");
  RETURN_IF_ERROR(CheckNcclWorld(spec));
  if (spec.device_index >= library_->device_count()) {
    return absl::InvalidArgumentError(
        absl::StrCat("device_index must be in [0, ", library_->device_count(),
                     ") (the CUDA devices visible here), got ", spec.device_index));
  }
  const absl::Time start = absl::Now();
  device_index_ = spec.device_index;
  timeout_ = spec.timeout;
  epoch_ = spec.epoch;
  rank_ = spec.rank;
  world_size_ = spec.world_size;

  absl::Status status = ConnectWorld(spec, rendezvous);
  if (!status.ok()) {
    spdlog::debug("nccl: rank {} world bootstrap of epoch {} failed after {}: {}", rank_, epoch_,
                  absl::FormatDuration(absl::Now() - start), status.ToString());
    world_failed_ = true;
    Release();
    return status;
  }
  spdlog::debug("nccl: rank {}/{} connected the world of epoch {} on device {} in {}", rank_,
                world_size_, epoch_, device_index_, absl::FormatDuration(absl::Now() - start));
  return absl::OkStatus();
}

absl::Status NcclGroupBuilder::ConnectWorld(const WorldSpec& spec, RendezvousClient* rendezvous) {
  absl::Time step = absl::Now();
  RETURN_IF_ERROR(CudaCheck(cuda().SetDevice(device_index_),
                            absl::StrCat("cudaSetDevice(", device_index_, ")")));
  nccl::CudaStream stream = nullptr;
  RETURN_IF_ERROR(CudaCheck(cuda().StreamCreateWithFlags(&stream, nccl::kCudaStreamNonBlocking),
                            "cudaStreamCreateWithFlags"));
  stream_ = stream;
  stream_created_ = true;
  spdlog::debug("nccl: rank {} set device {} and created a stream in {}", rank_, device_index_,
                absl::FormatDuration(absl::Now() - step));

  step = absl::Now();
  nccl::UniqueId id;
  if (spec.rank == 0) {
    const Result result = nccl().GetUniqueId(&id);
    if (result != nccl::kSuccess) return NcclStatus(result, "ncclGetUniqueId of the world");
    RETURN_IF_ERROR(Annotate(rendezvous->Set(kWorldIdKey, IdBytes(id)),
                             absl::StrCat("rendezvous set of ", kWorldIdKey)));
  } else {
    absl::StatusOr<std::vector<std::string>> values = rendezvous->Get({kWorldIdKey}, spec.timeout);
    if (!values.ok()) {
      return Annotate(values.status(), absl::StrCat("rendezvous get of ", kWorldIdKey));
    }
    if (values->size() != 1) {
      return absl::InternalError(absl::StrCat("rendezvous get of ", kWorldIdKey, " returned ",
                                              values->size(), " values for 1 key"));
    }
    ASSIGN_OR_RETURN(id, IdFromBytes((*values)[0], kWorldIdKey));
  }
  spdlog::debug("nccl: rank {} {} the world id in {}", rank_, spec.rank == 0 ? "published" : "read",
                absl::FormatDuration(absl::Now() - step));

  step = absl::Now();
  nccl::Config config = MakeConfig();
  const absl::Time deadline = absl::Now() + spec.timeout;
  const Result result = nccl().CommInitRankConfig(&world_, spec.world_size, id, spec.rank, &config);
  absl::Status status = SettleNew(&world_, result, "ncclCommInitRankConfig of the world", deadline);
  if (absl::IsDeadlineExceeded(status)) {
    CommHandle world = __atomic_load_n(&world_, __ATOMIC_ACQUIRE);
    AbortNow(&world, "world");
    world_ = nullptr;
  }
  RETURN_IF_ERROR(status);
  if (world_ == nullptr) {
    return absl::InternalError("ncclCommInitRankConfig of the world gave no communicator");
  }
  RETURN_IF_ERROR(CheckComm(world_, spec.world_size, spec.rank, "world"));
  spdlog::debug("nccl: rank {} ncclCommInitRankConfig of the world ({} ranks, {}) in {}", rank_,
                spec.world_size, options_.nonblocking ? "non-blocking" : "blocking",
                absl::FormatDuration(absl::Now() - step));
  return absl::OkStatus();
}

}  // namespace splitd::worker::nccl_internal
