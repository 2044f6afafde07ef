// The "cuda:nccl" builder's subgroups: by ncclCommSplit of the world (method split) or by a
// unique id per group and grouped inits (method init).

#include <memory>
#include <string>
#include <utility>
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

std::string InitKey(const GroupAssignment& group) {
  return absl::StrCat("nccl/init/", group.kind, "/", group.group_index);
}

}  // namespace

absl::Status NcclGroupBuilder::FormGroups(const WorldSpec& spec, RendezvousClient* rendezvous) {
  if (library_ == nullptr) return absl::FailedPreconditionError("NCCL library is not loaded");
  if (world_ == nullptr) return absl::FailedPreconditionError("FormGroups before BootstrapWorld");
  if (groups_formed_ || !groups_.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("groups of epoch ", epoch_, " are already formed"));
  }
  if (world_failed_) {
    return absl::FailedPreconditionError(
        "the world communicator failed; Release and bootstrap again");
  }
  RETURN_IF_ERROR(CheckNcclWorld(spec));
  if (spec.epoch != epoch_ || spec.rank != rank_ || spec.world_size != world_size_ ||
      spec.device_index != device_index_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec (epoch ", spec.epoch, ", rank ", spec.rank, "/", spec.world_size, ", device ",
        spec.device_index, ") does not match the bootstrapped world (epoch ", epoch_, ", rank ",
        rank_, "/", world_size_, ", device ", device_index_, ")"));
  }
  RETURN_IF_ERROR(CheckNcclGroups(spec));
  if (spec.method == "init" && rendezvous == nullptr) {
    return absl::InvalidArgumentError("method init needs a rendezvous client");
  }
  if (spec.method == "split" && !library_->supports_split()) {
    return absl::FailedPreconditionError(
        absl::StrCat("method split needs ncclCommSplit (NCCL >= 2.18.1); the loaded NCCL is ",
                     library_->version_string(), "; use method init"));
  }
  timeout_ = spec.timeout;
  const absl::Time start = absl::Now();
  absl::Status status = CudaCheck(library_->cuda().SetDevice(device_index_),
                                  absl::StrCat("cudaSetDevice(", device_index_, ")"));
  if (status.ok()) {
    status = spec.method == "split" ? SplitGroups(spec) : InitGroups(spec, rendezvous);
  }
  if (status.ok()) status = CheckChildren();
  if (!status.ok()) {
    // Every child of this attempt is aborted in Release.
    for (const std::unique_ptr<FormedGroup>& group : groups_) group->failed = true;
    spdlog::debug("nccl: rank {} {} of epoch {} failed after {}: {}", rank_, spec.method, epoch_,
                  absl::FormatDuration(absl::Now() - start), status.ToString());
    return status;
  }
  groups_formed_ = true;
  spdlog::debug("nccl: rank {} formed {} group(s) of epoch {} by {} in {}", rank_, groups_.size(),
                epoch_, spec.method, absl::FormatDuration(absl::Now() - start));
  return absl::OkStatus();
}

absl::Status NcclGroupBuilder::SplitGroups(const WorldSpec& spec) {
  ASSIGN_OR_RETURN(const std::vector<ColorKey> splits, SplitColorKeys(spec));
  for (const ColorKey& split : splits) {
    const absl::Time start = absl::Now();
    auto group = std::make_unique<FormedGroup>();
    if (split.color != nccl::kSplitNoColor) {
      for (const GroupAssignment& assignment : spec.groups) {
        if (assignment.kind_index == split.kind_index) group->assignment = assignment;
      }
    }
    const std::string step = absl::StrCat("ncclCommSplit of kind ", split.kind, " (color ",
                                          split.color, ", key ", split.key, ")");
    nccl::Config config = MakeConfig();
    const absl::Time deadline = absl::Now() + spec.timeout;
    const Result result = nccl().CommSplit(world_, split.color, split.key, &group->comm, &config);
    absl::Status status = SettleSplit(group.get(), split.color, result, step, deadline);
    if (!status.ok()) {
      world_failed_ = true;
      group->failed = true;
      if (absl::IsDeadlineExceeded(status)) {
        // Stopping a hung non-blocking split: abort the parent, then the child if NCCL has
        // published it. NCCL's split thread may still store into group->comm afterwards, so
        // that slot is deliberately leaked rather than freed under it.
        AbortNow(&world_, "world");
        CommHandle child = __atomic_load_n(&group->comm, __ATOMIC_ACQUIRE);
        AbortNow(&child, step);
        static_cast<void>(group.release());
        return status;
      }
      if (group->comm != nullptr) groups_.push_back(std::move(group));  // aborted in Release
      return status;
    }
    if (split.color == nccl::kSplitNoColor) {
      if (group->comm != nullptr) {
        group->failed = true;
        groups_.push_back(std::move(group));
        world_failed_ = true;
        return absl::InternalError(
            absl::StrCat(step, ": NCCL returned a communicator for NOCOLOR"));
      }
      nocolor_slots_.push_back(std::move(group));  // freed in Release, after NCCL is done
    } else {
      if (group->comm == nullptr) {
        return absl::InternalError(absl::StrCat(step, ": NCCL returned no communicator"));
      }
      groups_.push_back(std::move(group));
    }
    spdlog::debug("nccl: rank {} {} in {}", rank_, step, absl::FormatDuration(absl::Now() - start));
  }
  return absl::OkStatus();
}

absl::Status NcclGroupBuilder::SettleSplit(FormedGroup* group, int color, Result result,
                                           absl::string_view step, absl::Time deadline) {
  if (result != nccl::kSuccess && result != nccl::kInProgress) {
    return NcclStatus(result, step);
  }
  if (result == nccl::kSuccess && !options_.nonblocking) return absl::OkStatus();
  RETURN_IF_ERROR(Poll(world_, absl::StrCat(step, ", parent"), deadline));
  if (color == nccl::kSplitNoColor) return absl::OkStatus();
  return SettleNew(&group->comm, nccl::kInProgress, absl::StrCat(step, ", child"), deadline);
}

absl::Status NcclGroupBuilder::InitGroups(const WorldSpec& spec, RendezvousClient* rendezvous) {
  absl::Time step = absl::Now();
  std::vector<GroupAssignment> ordered;
  for (size_t i : KindOrder(spec.groups)) ordered.push_back(spec.groups[i]);
  ASSIGN_OR_RETURN(const std::vector<nccl::UniqueId> ids,
                   ExchangeInitIds(ordered, spec, rendezvous, step));

  step = absl::Now();
  std::vector<nccl::Config> configs(ordered.size(), MakeConfig());
  std::vector<FormedGroup*> slots;
  for (const GroupAssignment& assignment : ordered) {
    auto group = std::make_unique<FormedGroup>();
    group->assignment = assignment;
    slots.push_back(group.get());
    groups_.push_back(std::move(group));  // from here on, Release aborts what NCCL created
  }
  const absl::Time deadline = absl::Now() + spec.timeout;
  Result result = nccl().GroupStart();
  if (result != nccl::kSuccess) return NcclStatus(result, "ncclGroupStart before the inits");
  absl::Status status = absl::OkStatus();
  for (size_t i = 0; i < slots.size() && status.ok(); ++i) {
    const GroupAssignment& group = slots[i]->assignment;
    result = nccl().CommInitRankConfig(&slots[i]->comm, static_cast<int>(group.members.size()),
                                       ids[i], group.local_rank, &configs[i]);
    if (result != nccl::kSuccess && result != nccl::kInProgress) {
      status =
          NcclStatus(result, absl::StrCat("ncclCommInitRankConfig of group ", GroupName(group)));
    }
  }
  // The group is closed even after a failed init inside it.
  result = nccl().GroupEnd();
  if (status.ok() && result != nccl::kSuccess && result != nccl::kInProgress) {
    status = NcclStatus(result, absl::StrCat("ncclGroupEnd of ", slots.size(), " init(s)"));
  }
  if (status.ok() && (options_.nonblocking || result == nccl::kInProgress)) {
    for (FormedGroup* slot : slots) {
      status = SettleNew(
          &slot->comm, nccl::kInProgress,
          absl::StrCat("ncclCommInitRankConfig of group ", GroupName(slot->assignment)), deadline);
      if (!status.ok()) break;
    }
    if (absl::IsDeadlineExceeded(status)) AbandonInits();
  }
  RETURN_IF_ERROR(status);
  for (FormedGroup* slot : slots) {
    if (slot->comm == nullptr) {
      return absl::InternalError(absl::StrCat("ncclCommInitRankConfig of group ",
                                              GroupName(slot->assignment),
                                              " gave no communicator"));
    }
  }
  spdlog::debug("nccl: rank {} {} grouped ncclCommInitRankConfig call(s) in {}", rank_,
                slots.size(), absl::FormatDuration(absl::Now() - step));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<nccl::UniqueId>> NcclGroupBuilder::ExchangeInitIds(
    const std::vector<GroupAssignment>& ordered, const WorldSpec& spec,
    RendezvousClient* rendezvous, absl::Time step) {
  std::vector<nccl::UniqueId> ids(ordered.size());
  std::vector<std::string> keys;  // ids this rank reads
  std::vector<size_t> key_group;  // ... and the group each belongs to
  for (size_t i = 0; i < ordered.size(); ++i) {
    const GroupAssignment& group = ordered[i];
    if (group.local_rank != 0) {
      keys.push_back(InitKey(group));
      key_group.push_back(i);
      continue;
    }
    const Result result = nccl().GetUniqueId(&ids[i]);
    if (result != nccl::kSuccess) {
      return NcclStatus(result, absl::StrCat("ncclGetUniqueId of group ", GroupName(group)));
    }
    if (group.members.size() > 1) {  // nobody else needs the id of a 1-rank group
      RETURN_IF_ERROR(Annotate(rendezvous->Set(InitKey(group), IdBytes(ids[i])),
                               absl::StrCat("rendezvous set of ", InitKey(group))));
    }
  }
  if (!keys.empty()) {
    absl::StatusOr<std::vector<std::string>> values = rendezvous->Get(keys, spec.timeout);
    if (!values.ok()) {
      return Annotate(values.status(),
                      absl::StrCat("rendezvous get of ", keys.size(), " init id(s)"));
    }
    if (values->size() != keys.size()) {
      return absl::InternalError(absl::StrCat("rendezvous get of ", keys.size(),
                                              " init id(s) returned ", values->size(), " values"));
    }
    for (size_t k = 0; k < keys.size(); ++k) {
      ASSIGN_OR_RETURN(ids[key_group[k]], IdFromBytes((*values)[k], keys[k]));
    }
  }
  spdlog::debug("nccl: rank {} exchanged {} init id(s) ({} read) in {}", rank_, ids.size(),
                keys.size(), absl::FormatDuration(absl::Now() - step));
  return ids;
}

void NcclGroupBuilder::AbandonInits() {
  std::vector<std::unique_ptr<FormedGroup>> kept;
  for (std::unique_ptr<FormedGroup>& group : groups_) {
    CommHandle comm = __atomic_load_n(&group->comm, __ATOMIC_ACQUIRE);
    if (comm == nullptr) {
      static_cast<void>(group.release());
      continue;
    }
    AbortNow(&comm, GroupName(group->assignment));
    group->comm = nullptr;
    kept.push_back(std::move(group));
  }
  groups_ = std::move(kept);
}

absl::Status NcclGroupBuilder::CheckChildren() {
  for (const std::unique_ptr<FormedGroup>& group : groups_) {
    const absl::Status status =
        CheckComm(group->comm, static_cast<int>(group->assignment.members.size()),
                  group->assignment.local_rank, GroupName(group->assignment));
    if (!status.ok()) {
      group->failed = true;
      return status;
    }
  }
  return absl::OkStatus();
}

}  // namespace splitd::worker::nccl_internal
