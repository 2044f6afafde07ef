// The "cuda:nccl" builder's ShrinkWorld: the held world shrunk to the ranks of a later epoch by
// ncclCommShrink, without a fresh bootstrap.

#include <cstdint>
#include <memory>
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

absl::Status NcclGroupBuilder::ShrinkWorld(const WorldSpec& spec,
                                           const std::vector<int32_t>& previous_ranks,
                                           RendezvousClient* rendezvous) {
  static_cast<void>(rendezvous);  // ncclCommShrink needs no new id
  ASSIGN_OR_RETURN(std::vector<int> excluded, CheckShrink(spec, previous_ranks));
  timeout_ = spec.timeout;
  const absl::Time start = absl::Now();
  RETURN_IF_ERROR(CudaCheck(cuda().SetDevice(device_index_),
                            absl::StrCat("cudaSetDevice(", device_index_, ")")));

  // The held subgroups are not needed and may contain a dead peer: they are aborted (never
  // destroyed) on the reaper's thread while the world they were split from is shrunk here. They
  // share no resources with it (splitShare is 0), and an abort takes about 0.5 s each.
  for (const std::unique_ptr<FormedGroup>& group : groups_) {
    AbortLater(&group->comm, absl::StrCat(GroupName(group->assignment), " of epoch ", epoch_));
  }
  groups_.clear();
  nocolor_slots_.clear();
  groups_formed_ = false;
  const absl::Time groups_aborted = absl::Now();

  // NCCL_SHRINK_ABORT: a removed rank is a lost member in our use, so the parent may have work
  // that waits on a dead peer; abort mode stops it first and shares no resources with it.
  const std::string step = absl::StrCat("ncclCommShrink of the world of epoch ", epoch_, " from ",
                                        world_size_, " to ", spec.world_size, " ranks");
  // NCCL's init thread may store into the slot after a timeout: it lives on the heap and is
  // leaked then rather than freed under that thread.
  auto slot = std::make_unique<CommHandle>(nullptr);
  RETURN_IF_ERROR(CommShrinkWorld(spec, &excluded, step, start, &slot));
  const absl::Time shrunk = absl::Now();
  return AdoptShrunkWorld(spec, *slot, start, groups_aborted, shrunk);
}

absl::StatusOr<std::vector<int>> NcclGroupBuilder::CheckShrink(
    const WorldSpec& spec, const std::vector<int32_t>& previous_ranks) const {
  if (library_ == nullptr) return absl::FailedPreconditionError("NCCL library is not loaded");
  if (!library_->supports_shrink()) {
    return absl::UnimplementedError(absl::StrCat(
        "ncclCommShrink needs NCCL >= 2.27.3; the loaded NCCL is ", library_->version_string()));
  }
  if (world_ == nullptr) return absl::FailedPreconditionError("ShrinkWorld without a held world");
  if (world_failed_) {
    return absl::FailedPreconditionError(
        absl::StrCat("the world of epoch ", epoch_, " failed; it cannot be shrunk"));
  }
  RETURN_IF_ERROR(CheckNcclWorld(spec));
  if (spec.epoch <= epoch_) {
    return absl::InvalidArgumentError(absl::StrCat("spec.epoch must be later than the held epoch ",
                                                   epoch_, ", got ", spec.epoch));
  }
  if (spec.device_index != device_index_) {
    return absl::InvalidArgumentError(absl::StrCat("spec.device_index ", spec.device_index,
                                                   " differs from the held world's device ",
                                                   device_index_));
  }
  return ShrinkExcludedRanks(spec, world_size_, rank_, previous_ranks);
}

absl::Status NcclGroupBuilder::CommShrinkWorld(const WorldSpec& spec, std::vector<int>* excluded,
                                               const std::string& step, absl::Time start,
                                               std::unique_ptr<CommHandle>* slot) {
  nccl::Config config = MakeConfig();
  const absl::Time deadline = absl::Now() + spec.timeout;
  const Result result = nccl().CommShrink(
      world_, excluded->data(), static_cast<int>(excluded->size()), slot->get(), &config,
      options_.shrink_with_abort ? nccl::kShrinkAbort : nccl::kShrinkDefault);
  absl::Status status = absl::OkStatus();
  if (result != nccl::kSuccess && result != nccl::kInProgress) {
    status = NcclStatus(result, step);
  } else if (result == nccl::kInProgress || options_.nonblocking) {
    // As for a split: the parent settles, then NCCL publishes the child and it settles.
    status = Poll(world_, absl::StrCat(step, ", parent"), deadline);
    if (status.ok()) {
      status = SettleNew(slot->get(), nccl::kInProgress, absl::StrCat(step, ", child"), deadline);
    }
  }
  if (status.ok() && **slot == nullptr) {
    status = absl::InternalError(absl::StrCat(step, ": NCCL returned no communicator"));
  }
  if (!status.ok()) {
    world_failed_ = true;  // Release aborts it
    CommHandle child = __atomic_load_n(slot->get(), __ATOMIC_ACQUIRE);
    if (absl::IsDeadlineExceeded(status)) {
      AbortNow(&world_, "world");
      AbortNow(&child, step);
      static_cast<void>(slot->release());
    } else {
      AbortNow(&child, step);
    }
    spdlog::debug("nccl: rank {} {} failed after {}: {}", rank_, step,
                  absl::FormatDuration(absl::Now() - start), status.ToString());
    return status;
  }
  return absl::OkStatus();
}

absl::Status NcclGroupBuilder::AdoptShrunkWorld(const WorldSpec& spec, CommHandle shrunk_world,
                                                absl::Time start, absl::Time groups_aborted,
                                                absl::Time shrunk) {
  // The old world is done with: abort it in the background (a destroy might wait on the
  // removed ranks); the shrunk world shares nothing with it (NCCL_SHRINK_ABORT, or shrinkShare
  // 0).
  CommHandle old_world = world_;
  world_ = shrunk_world;
  AbortLater(&old_world, absl::StrCat("world of epoch ", epoch_));
  const int64_t old_epoch = epoch_;
  const int old_size = world_size_;
  epoch_ = spec.epoch;
  rank_ = spec.rank;
  world_size_ = spec.world_size;
  const absl::Status status = CheckComm(world_, spec.world_size, spec.rank, "shrunk world");
  if (!status.ok()) {
    world_failed_ = true;
    return status;
  }
  spdlog::debug(
      "nccl: rank {}/{} shrank the world of epoch {} ({} ranks) to epoch {} in {}: old groups "
      "handed to the background abort in {}, ncclCommShrink ({}) {}; old world aborted in the "
      "background",
      rank_, world_size_, old_epoch, old_size, epoch_, absl::FormatDuration(absl::Now() - start),
      absl::FormatDuration(groups_aborted - start),
      options_.shrink_with_abort ? "abort" : "default",
      absl::FormatDuration(shrunk - groups_aborted));
  return absl::OkStatus();
}

}  // namespace splitd::worker::nccl_internal
