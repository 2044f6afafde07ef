// The "cuda:nccl" builder: its factory, the NCCL and CUDA helpers every step uses, and the
// teardown (Release, Abort, the background aborts).

#include "worker/nccl/nccl_group_builder.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"
#include "worker/nccl/color_key.h"
#include "worker/nccl/comm_reaper.h"
#include "worker/nccl/nccl_api.h"
#include "worker/nccl/nccl_group_builder_internal.h"
#include "worker/nccl/nccl_library.h"

namespace splitd::worker::nccl_internal {
namespace {

constexpr absl::Duration kPollInterval = absl::Microseconds(100);

}  // namespace

std::string IdBytes(const nccl::UniqueId& id) {
  return std::string(id.internal, sizeof(id.internal));
}

absl::StatusOr<nccl::UniqueId> IdFromBytes(const std::string& bytes, const std::string& key) {
  nccl::UniqueId id;
  if (bytes.size() != sizeof(id.internal)) {
    return absl::InternalError(absl::StrCat("rendezvous key ", key, " holds ", bytes.size(),
                                            " bytes, not an NCCL unique id of ",
                                            sizeof(id.internal)));
  }
  std::memcpy(id.internal, bytes.data(), sizeof(id.internal));
  return id;
}

absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

void NcclGroupBuilder::Abort() {
  AbortInBackground();
  AwaitReaper();
}

void NcclGroupBuilder::AbortInBackground() {
  if (library_ == nullptr) return;
  // Children first, then the world they were split from, as Release orders them.
  for (const std::unique_ptr<FormedGroup>& group : groups_) {
    AbortLater(&group->comm, absl::StrCat(GroupName(group->assignment), " of epoch ", epoch_));
  }
  groups_.clear();
  nocolor_slots_.clear();
  groups_formed_ = false;
  AbortLater(&world_, absl::StrCat("world of epoch ", epoch_));
  world_failed_ = false;
  if (stream_created_) {
    // Only the validation all-reduces ran on it, and they are done or abandoned;
    // cudaStreamDestroy does not wait for the device either way.
    const CudaError set = library_->cuda().SetDevice(device_index_);
    if (set != 0) {
      spdlog::warn("nccl: rank {} abort: cudaSetDevice({}): {}", rank_, device_index_,
                   library_->DescribeCuda(set));
    }
    DestroyStream();
  }
}

void NcclGroupBuilder::Release() {
  if (library_ == nullptr) return;
  if (world_ == nullptr && !stream_created_ && groups_.empty()) {
    nocolor_slots_.clear();
    groups_formed_ = false;
    AwaitReaper();
    return;
  }
  const absl::Time start = absl::Now();
  const CudaError set = library_->cuda().SetDevice(device_index_);
  if (set != 0) {
    spdlog::warn("nccl: rank {} release: cudaSetDevice({}): {}", rank_, device_index_,
                 library_->DescribeCuda(set));
  }
  // Children in kind order (the same on every rank: destroy may synchronize within a node),
  // then the world they were split from, then the stream.
  for (const std::unique_ptr<FormedGroup>& group : groups_) {
    if (group->comm != nullptr) {
      DestroyComm(group->comm, group->failed, GroupName(group->assignment));
      group->comm = nullptr;
    }
  }
  groups_.clear();
  nocolor_slots_.clear();
  groups_formed_ = false;
  if (world_ != nullptr) {
    DestroyComm(world_, world_failed_, "world");
    world_ = nullptr;
  }
  world_failed_ = false;
  if (stream_created_) DestroyStream();
  AwaitReaper();
  spdlog::debug("nccl: rank {} released epoch {} in {}", rank_, epoch_,
                absl::FormatDuration(absl::Now() - start));
}

absl::Status NcclGroupBuilder::NcclStatus(Result result, absl::string_view step) const {
  std::string message = absl::StrCat(step, ": ", library_->DescribeNccl(result));
  if (result == nccl::kSystemError || result == nccl::kRemoteError) {
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

absl::Status NcclGroupBuilder::CudaCheck(CudaError error, absl::string_view step) const {
  if (error == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(step, ": ", library_->DescribeCuda(error)));
}

nccl::Config NcclGroupBuilder::MakeConfig() const {
  nccl::Config config = nccl::DefaultConfig(std::min(library_->version(), nccl::Version(2, 28, 3)));
  config.blocking = options_.nonblocking ? 0 : 1;
  return config;
}

absl::Status NcclGroupBuilder::Poll(CommHandle comm, absl::string_view step,
                                    absl::Time deadline) const {
  while (true) {
    Result state = nccl::kInProgress;
    const Result result = nccl().CommGetAsyncError(comm, &state);
    if (result != nccl::kSuccess) {
      return NcclStatus(result, absl::StrCat(step, " (ncclCommGetAsyncError)"));
    }
    if (state == nccl::kSuccess) return absl::OkStatus();
    if (state != nccl::kInProgress) return NcclStatus(state, step);
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(step, ": still in progress after ", absl::FormatDuration(timeout_)));
    }
    absl::SleepFor(kPollInterval);
  }
}

absl::Status NcclGroupBuilder::Settle(CommHandle comm, Result result, absl::string_view step,
                                      absl::Time deadline) const {
  if (result != nccl::kSuccess && result != nccl::kInProgress) {
    return NcclStatus(result, step);
  }
  if (result == nccl::kSuccess && !options_.nonblocking) return absl::OkStatus();
  if (comm == nullptr) {
    return absl::InternalError(
        absl::StrCat(step, ": returned ", result, " without a communicator to wait on"));
  }
  return Poll(comm, step, deadline);
}

absl::Status NcclGroupBuilder::SettleNew(CommHandle* slot, Result result, absl::string_view step,
                                         absl::Time deadline) const {
  if (result != nccl::kSuccess && result != nccl::kInProgress) {
    return NcclStatus(result, step);
  }
  if (result == nccl::kSuccess && !options_.nonblocking) return absl::OkStatus();
  CommHandle comm = nullptr;
  while ((comm = __atomic_load_n(slot, __ATOMIC_ACQUIRE)) == nullptr) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(step, ": no communicator after ", absl::FormatDuration(timeout_)));
    }
    absl::SleepFor(kPollInterval);
  }
  return Poll(comm, step, deadline);
}

void NcclGroupBuilder::AbortLater(CommHandle* comm, const std::string& name) {
  if (*comm == nullptr) return;
  reaper_->Abort(*comm, device_index_, absl::StrCat("rank ", rank_, " ", name));
  *comm = nullptr;
}

void NcclGroupBuilder::AwaitReaper() {
  if (reaper_ == nullptr || reaper_->Await(timeout_)) return;
  spdlog::warn("nccl: rank {}: {} background communicator abort(s) still running after {}", rank_,
               reaper_->pending(), absl::FormatDuration(timeout_));
}

void NcclGroupBuilder::DestroyStream() {
  const CudaError error = library_->cuda().StreamDestroy(stream_);
  if (error != 0) {
    spdlog::warn("nccl: rank {} cudaStreamDestroy: {}", rank_, library_->DescribeCuda(error));
  }
  stream_ = nullptr;
  stream_created_ = false;
}

void NcclGroupBuilder::AbortNow(CommHandle* comm, const std::string& name) {
  if (*comm == nullptr) return;
  const Result result = nccl().CommAbort(*comm);
  if (result != nccl::kSuccess) {
    spdlog::warn("nccl: rank {} ncclCommAbort of {}: {}", rank_, name,
                 library_->DescribeNccl(result));
  }
  *comm = nullptr;
}

absl::Status NcclGroupBuilder::CheckComm(CommHandle comm, int size, int rank,
                                         absl::string_view name) const {
  int count = -1;
  Result result = nccl().CommCount(comm, &count);
  if (result != nccl::kSuccess) return NcclStatus(result, absl::StrCat("ncclCommCount of ", name));
  int user_rank = -1;
  result = nccl().CommUserRank(comm, &user_rank);
  if (result != nccl::kSuccess) {
    return NcclStatus(result, absl::StrCat("ncclCommUserRank of ", name));
  }
  if (count != size || user_rank != rank) {
    return absl::InternalError(absl::StrCat("communicator of ", name, " has rank ", user_rank,
                                            " of ", count, ", planned rank ", rank, " of ", size));
  }
  return absl::OkStatus();
}

void NcclGroupBuilder::DestroyComm(CommHandle comm, bool failed, const std::string& name) {
  const absl::Time start = absl::Now();
  bool abort = failed;
  if (!abort) {
    Result state = nccl::kSuccess;
    const Result result = nccl().CommGetAsyncError(comm, &state);
    if (result != nccl::kSuccess || state != nccl::kSuccess) {
      spdlog::debug("nccl: rank {} {} is in state {} (query {}): aborting it", rank_, name, state,
                    result);
      abort = true;
    }
  }
  if (!abort) {
    const absl::Status finalized =
        Settle(comm, nccl().CommFinalize(comm), absl::StrCat("ncclCommFinalize of ", name),
               absl::Now() + timeout_);
    if (finalized.ok()) {
      const Result result = nccl().CommDestroy(comm);
      if (result != nccl::kSuccess) {
        spdlog::warn("nccl: rank {} ncclCommDestroy of {}: {}", rank_, name,
                     library_->DescribeNccl(result));
      } else {
        spdlog::debug("nccl: rank {} finalized and destroyed {} in {}", rank_, name,
                      absl::FormatDuration(absl::Now() - start));
      }
      return;
    }
    spdlog::warn("nccl: rank {} {}; aborting", rank_, finalized.ToString());
  }
  const Result result = nccl().CommAbort(comm);
  if (result != nccl::kSuccess) {
    spdlog::warn("nccl: rank {} ncclCommAbort of {}: {}", rank_, name,
                 library_->DescribeNccl(result));
  } else {
    spdlog::debug("nccl: rank {} aborted {} in {}", rank_, name,
                  absl::FormatDuration(absl::Now() - start));
  }
}

}  // namespace splitd::worker::nccl_internal

namespace splitd::worker {

std::unique_ptr<GroupBuilder> MakeNcclGroupBuilder(std::shared_ptr<const nccl::NcclLibrary> library,
                                                   NcclBuilderOptions options) {
  return std::make_unique<nccl_internal::NcclGroupBuilder>(std::move(library), options);
}

}  // namespace splitd::worker
