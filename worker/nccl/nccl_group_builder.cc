#include "worker/nccl/nccl_group_builder.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
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
#include "worker/nccl/comm_reaper.h"
#include "worker/nccl/nccl_api.h"
#include "worker/nccl/nccl_library.h"

namespace splitd::worker {
namespace {

using nccl::CommHandle;
using nccl::CudaError;
using nccl::Result;

constexpr char kBackend[] = "cuda:nccl";
constexpr char kWorldIdKey[] = "nccl/world/id";
constexpr int kBandwidthIterations = 5;
constexpr absl::Duration kPollInterval = absl::Microseconds(100);
// Bounds on the buffers, so that element counts times 4 bytes cannot overflow.
constexpr int64_t kMaxAllreduceElements = int64_t{1} << 30;
constexpr int64_t kMaxBandwidthBytes = int64_t{1} << 36;

std::string InitKey(const GroupAssignment& group) {
  return absl::StrCat("nccl/init/", group.kind, "/", group.group_index);
}

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

// The same code with `context` in front of the message.
absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

class NcclGroupBuilder final : public GroupBuilder {
 public:
  NcclGroupBuilder(std::shared_ptr<const nccl::NcclLibrary> library, NcclBuilderOptions options)
      : library_(std::move(library)),
        options_(options),
        reaper_(library_ == nullptr ? nullptr : std::make_unique<nccl::CommReaper>(library_)) {}

  // Release waits for the background aborts (bounded); the reaper then stops.
  ~NcclGroupBuilder() override { Release(); }

  std::string backend() const override { return kBackend; }

  absl::Status BootstrapWorld(const WorldSpec& spec, RendezvousClient* rendezvous) override {
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
      spdlog::debug("nccl: rank {} world bootstrap of epoch {} failed after {}: {}", rank_,
                    epoch_, absl::FormatDuration(absl::Now() - start), status.ToString());
      world_failed_ = true;
      Release();
      return status;
    }
    spdlog::debug("nccl: rank {}/{} connected the world of epoch {} on device {} in {}", rank_,
                  world_size_, epoch_, device_index_, absl::FormatDuration(absl::Now() - start));
    return absl::OkStatus();
  }

  absl::Status FormGroups(const WorldSpec& spec, RendezvousClient* rendezvous) override {
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
          spec.device_index, ") does not match the bootstrapped world (epoch ", epoch_,
          ", rank ", rank_, "/", world_size_, ", device ", device_index_, ")"));
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
      spdlog::debug("nccl: rank {} {} of epoch {} failed after {}: {}", rank_, spec.method,
                    epoch_, absl::FormatDuration(absl::Now() - start), status.ToString());
      return status;
    }
    groups_formed_ = true;
    spdlog::debug("nccl: rank {} formed {} group(s) of epoch {} by {} in {}", rank_,
                  groups_.size(), epoch_, spec.method, absl::FormatDuration(absl::Now() - start));
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<GroupValidation>> Validate(const WorldSpec& spec) override {
    if (library_ == nullptr) return absl::FailedPreconditionError("NCCL library is not loaded");
    if (world_ == nullptr && !groups_formed_) {
      return absl::FailedPreconditionError("Validate before BootstrapWorld");
    }
    if (!groups_formed_) return absl::FailedPreconditionError("Validate before FormGroups");
    RETURN_IF_ERROR(CheckNcclWorld(spec));
    if (spec.allreduce_elements < 1 || spec.allreduce_elements > kMaxAllreduceElements) {
      return absl::InvalidArgumentError(absl::StrCat("allreduce_elements must be in [1, ",
                                                     kMaxAllreduceElements, "], got ",
                                                     spec.allreduce_elements));
    }
    if (spec.bandwidth_bytes < 0 || spec.bandwidth_bytes > kMaxBandwidthBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bandwidth_bytes must be in [0, ", kMaxBandwidthBytes, "], got ", spec.bandwidth_bytes));
    }
    // Each requested group must have been formed; find it by (kind, group index).
    std::vector<FormedGroup*> formed(spec.groups.size(), nullptr);
    for (size_t i = 0; i < spec.groups.size(); ++i) {
      for (const std::unique_ptr<FormedGroup>& group : groups_) {
        if (group->assignment.kind == spec.groups[i].kind &&
            group->assignment.group_index == spec.groups[i].group_index) {
          formed[i] = group.get();
        }
      }
      if (formed[i] == nullptr || formed[i]->comm == nullptr) {
        return absl::FailedPreconditionError(absl::StrCat(
            "Validate: group ", GroupName(spec.groups[i]), " was not formed (call FormGroups)"));
      }
    }
    timeout_ = spec.timeout;
    RETURN_IF_ERROR(CudaCheck(library_->cuda().SetDevice(device_index_),
                              absl::StrCat("cudaSetDevice(", device_index_, ")")));

    const absl::Time start = absl::Now();
    const std::vector<size_t> order = KindOrder(spec.groups);
    std::vector<GroupValidation> results(spec.groups.size());
    if (options_.serial_validation || order.size() <= 1) {
      // One group after another, in kind order on every rank: each all-reduce is waited for
      // before the next starts, so ranks that ordered them differently would deadlock.
      for (size_t i : order) results[i] = ValidateGroup(formed[i], spec, /*own_thread=*/false);
    } else {
      // Side by side, one thread and stream per group: a communicator's first collective
      // connects its peers (NCCL's lazy connection), and the groups connect concurrently
      // instead of one after another. Each thread waits only on its own group.
      std::vector<std::thread> threads;
      threads.reserve(order.size());
      for (size_t i : order) {
        threads.emplace_back([this, &results, &formed, &spec, i] {
          results[i] = ValidateGroup(formed[i], spec, /*own_thread=*/true);
        });
      }
      for (std::thread& thread : threads) thread.join();
    }
    if (spec.bandwidth_bytes > 0) {
      // Every group whose communicator did not fail, even with a wrong sum: the members must
      // agree on which groups run, or the ones that do would wait for the others forever.
      for (size_t i : order) {
        if (!formed[i]->failed) MeasureBandwidth(formed[i], spec, &results[i]);
      }
    }
    spdlog::debug("nccl: rank {} validated {} group(s) of epoch {} in {}", rank_, results.size(),
                  epoch_, absl::FormatDuration(absl::Now() - start));
    return results;
  }

  bool CanShrink() const override { return library_ != nullptr && library_->supports_shrink(); }

  absl::Status ShrinkWorld(const WorldSpec& spec, const std::vector<int32_t>& previous_ranks,
                           RendezvousClient* rendezvous) override {
    static_cast<void>(rendezvous);  // ncclCommShrink needs no new id
    if (library_ == nullptr) return absl::FailedPreconditionError("NCCL library is not loaded");
    if (!library_->supports_shrink()) {
      return absl::UnimplementedError(
          absl::StrCat("ncclCommShrink needs NCCL >= 2.27.3; the loaded NCCL is ",
                       library_->version_string()));
    }
    if (world_ == nullptr) return absl::FailedPreconditionError("ShrinkWorld without a held world");
    if (world_failed_) {
      return absl::FailedPreconditionError(
          absl::StrCat("the world of epoch ", epoch_, " failed; it cannot be shrunk"));
    }
    RETURN_IF_ERROR(CheckNcclWorld(spec));
    if (spec.epoch <= epoch_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "spec.epoch must be later than the held epoch ", epoch_, ", got ", spec.epoch));
    }
    if (spec.device_index != device_index_) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.device_index ", spec.device_index,
                       " differs from the held world's device ", device_index_));
    }
    ASSIGN_OR_RETURN(std::vector<int> excluded,
                     ShrinkExcludedRanks(spec, world_size_, rank_, previous_ranks));
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
    const std::string step = absl::StrCat("ncclCommShrink of the world of epoch ", epoch_,
                                          " from ", world_size_, " to ", spec.world_size,
                                          " ranks");
    // NCCL's init thread may store into the slot after a timeout: it lives on the heap and is
    // leaked then rather than freed under that thread.
    auto slot = std::make_unique<CommHandle>(nullptr);
    nccl::Config config = MakeConfig();
    const absl::Time deadline = absl::Now() + spec.timeout;
    const Result result =
        nccl().CommShrink(world_, excluded.data(), static_cast<int>(excluded.size()), slot.get(),
                          &config,
                          options_.shrink_with_abort ? nccl::kShrinkAbort : nccl::kShrinkDefault);
    absl::Status status = absl::OkStatus();
    if (result != nccl::kSuccess && result != nccl::kInProgress) {
      status = NcclStatus(result, step);
    } else if (result == nccl::kInProgress || options_.nonblocking) {
      // As for a split: the parent settles, then NCCL publishes the child and it settles.
      status = Poll(world_, absl::StrCat(step, ", parent"), deadline);
      if (status.ok()) {
        status = SettleNew(slot.get(), nccl::kInProgress, absl::StrCat(step, ", child"), deadline);
      }
    }
    if (status.ok() && *slot == nullptr) {
      status = absl::InternalError(absl::StrCat(step, ": NCCL returned no communicator"));
    }
    if (!status.ok()) {
      world_failed_ = true;  // Release aborts it
      CommHandle child = __atomic_load_n(slot.get(), __ATOMIC_ACQUIRE);
      if (absl::IsDeadlineExceeded(status)) {
        AbortNow(&world_, "world");
        AbortNow(&child, step);
        static_cast<void>(slot.release());
      } else {
        AbortNow(&child, step);
      }
      spdlog::debug("nccl: rank {} {} failed after {}: {}", rank_, step,
                    absl::FormatDuration(absl::Now() - start), status.ToString());
      return status;
    }
    const absl::Time shrunk = absl::Now();

    // The old world is done with: abort it in the background (a destroy might wait on the
    // removed ranks); the shrunk world shares nothing with it (NCCL_SHRINK_ABORT, or shrinkShare
    // 0).
    CommHandle old_world = world_;
    world_ = *slot;
    AbortLater(&old_world, absl::StrCat("world of epoch ", epoch_));
    const int64_t old_epoch = epoch_;
    const int old_size = world_size_;
    epoch_ = spec.epoch;
    rank_ = spec.rank;
    world_size_ = spec.world_size;
    status = CheckComm(world_, spec.world_size, spec.rank, "shrunk world");
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

  void Abort() override {
    AbortInBackground();
    AwaitReaper();
  }

  void AbortInBackground() override {
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

  bool TearingDown() const override { return reaper_ != nullptr && reaper_->pending() > 0; }

  void Release() override {
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

 private:
  struct FormedGroup {
    GroupAssignment assignment;
    // NCCL's own init thread may store into this (non-blocking mode), so each FormedGroup
    // lives on the heap and keeps its address.
    CommHandle comm = nullptr;
    bool failed = false;  // an operation on it failed: abort instead of finalize + destroy
  };

  const nccl::NcclFunctions& nccl() const { return library_->nccl(); }
  const nccl::CudaFunctions& cuda() const { return library_->cuda(); }

  absl::Status NcclStatus(Result result, absl::string_view step) const {
    std::string message = absl::StrCat(step, ": ", library_->DescribeNccl(result));
    if (result == nccl::kSystemError || result == nccl::kRemoteError) {
      return absl::UnavailableError(message);
    }
    return absl::InternalError(message);
  }

  absl::Status CudaCheck(CudaError error, absl::string_view step) const {
    if (error == 0) return absl::OkStatus();
    return absl::InternalError(absl::StrCat(step, ": ", library_->DescribeCuda(error)));
  }

  // Our ncclConfig_t is the 2.28 layout: claim at most a 2.28 version for it, so that a newer
  // library does not look for fields past its end.
  nccl::Config MakeConfig() const {
    nccl::Config config =
        nccl::DefaultConfig(std::min(library_->version(), nccl::Version(2, 28, 3)));
    config.blocking = options_.nonblocking ? 0 : 1;
    return config;
  }

  // Polls `comm` until it leaves ncclInProgress; DEADLINE_EXCEEDED at `deadline`.
  absl::Status Poll(CommHandle comm, absl::string_view step, absl::Time deadline) const {
    while (true) {
      Result state = nccl::kInProgress;
      const Result result = nccl().CommGetAsyncError(comm, &state);
      if (result != nccl::kSuccess) {
        return NcclStatus(result, absl::StrCat(step, " (ncclCommGetAsyncError)"));
      }
      if (state == nccl::kSuccess) return absl::OkStatus();
      if (state != nccl::kInProgress) return NcclStatus(state, step);
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            step, ": still in progress after ", absl::FormatDuration(timeout_)));
      }
      absl::SleepFor(kPollInterval);
    }
  }

  // The outcome of a call on `comm` that returned `result`: in non-blocking mode (or whenever
  // NCCL says ncclInProgress) the call is done only once the communicator's state settles.
  absl::Status Settle(CommHandle comm, Result result, absl::string_view step,
                      absl::Time deadline) const {
    if (result != nccl::kSuccess && result != nccl::kInProgress) {
      return NcclStatus(result, step);
    }
    if (result == nccl::kSuccess && !options_.nonblocking) return absl::OkStatus();
    if (comm == nullptr) {
      return absl::InternalError(absl::StrCat(step, ": returned ", result,
                                              " without a communicator to wait on"));
    }
    return Poll(comm, step, deadline);
  }

  // Waits until NCCL has stored the new communicator into `*slot` (its init job does so from its
  // own thread in non-blocking mode) and that communicator has settled.
  absl::Status SettleNew(CommHandle* slot, Result result, absl::string_view step,
                         absl::Time deadline) const {
    if (result != nccl::kSuccess && result != nccl::kInProgress) {
      return NcclStatus(result, step);
    }
    if (result == nccl::kSuccess && !options_.nonblocking) return absl::OkStatus();
    CommHandle comm = nullptr;
    while ((comm = __atomic_load_n(slot, __ATOMIC_ACQUIRE)) == nullptr) {
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            step, ": no communicator after ", absl::FormatDuration(timeout_)));
      }
      absl::SleepFor(kPollInterval);
    }
    return Poll(comm, step, deadline);
  }

  // Hands `*comm` (when NCCL has published one) to the background abort and clears it.
  void AbortLater(CommHandle* comm, const std::string& name) {
    if (*comm == nullptr) return;
    reaper_->Abort(*comm, device_index_, absl::StrCat("rank ", rank_, " ", name));
    *comm = nullptr;
  }

  // Waits for the background aborts, at most the step timeout: a builder released leaves
  // nothing behind unless an abort hangs.
  void AwaitReaper() {
    if (reaper_ == nullptr || reaper_->Await(timeout_)) return;
    spdlog::warn("nccl: rank {}: {} background communicator abort(s) still running after {}",
                 rank_, reaper_->pending(), absl::FormatDuration(timeout_));
  }

  void DestroyStream() {
    const CudaError error = library_->cuda().StreamDestroy(stream_);
    if (error != 0) {
      spdlog::warn("nccl: rank {} cudaStreamDestroy: {}", rank_, library_->DescribeCuda(error));
    }
    stream_ = nullptr;
    stream_created_ = false;
  }

  // Aborts `*comm` (when NCCL has published one) and clears it.
  void AbortNow(CommHandle* comm, const std::string& name) {
    if (*comm == nullptr) return;
    const Result result = nccl().CommAbort(*comm);
    if (result != nccl::kSuccess) {
      spdlog::warn("nccl: rank {} ncclCommAbort of {}: {}", rank_, name,
                   library_->DescribeNccl(result));
    }
    *comm = nullptr;
  }

  absl::Status ConnectWorld(const WorldSpec& spec, RendezvousClient* rendezvous) {
    absl::Time step = absl::Now();
    RETURN_IF_ERROR(CudaCheck(cuda().SetDevice(device_index_),
                              absl::StrCat("cudaSetDevice(", device_index_, ")")));
    nccl::CudaStream stream = nullptr;
    RETURN_IF_ERROR(CudaCheck(cuda().StreamCreateWithFlags(&stream, nccl::kCudaStreamNonBlocking),
                              "cudaStreamCreateWithFlags"));
    stream_ = stream;
    stream_created_ = true;
    spdlog::debug("nccl: rank {} set device {} and created a stream in {}", rank_,
                  device_index_, absl::FormatDuration(absl::Now() - step));

    step = absl::Now();
    nccl::UniqueId id;
    if (spec.rank == 0) {
      const Result result = nccl().GetUniqueId(&id);
      if (result != nccl::kSuccess) return NcclStatus(result, "ncclGetUniqueId of the world");
      RETURN_IF_ERROR(Annotate(rendezvous->Set(kWorldIdKey, IdBytes(id)),
                               absl::StrCat("rendezvous set of ", kWorldIdKey)));
    } else {
      absl::StatusOr<std::vector<std::string>> values =
          rendezvous->Get({kWorldIdKey}, spec.timeout);
      if (!values.ok()) {
        return Annotate(values.status(), absl::StrCat("rendezvous get of ", kWorldIdKey));
      }
      if (values->size() != 1) {
        return absl::InternalError(absl::StrCat("rendezvous get of ", kWorldIdKey, " returned ",
                                                values->size(), " values for 1 key"));
      }
      ASSIGN_OR_RETURN(id, IdFromBytes((*values)[0], kWorldIdKey));
    }
    spdlog::debug("nccl: rank {} {} the world id in {}", rank_,
                  spec.rank == 0 ? "published" : "read", absl::FormatDuration(absl::Now() - step));

    step = absl::Now();
    nccl::Config config = MakeConfig();
    const absl::Time deadline = absl::Now() + spec.timeout;
    const Result result =
        nccl().CommInitRankConfig(&world_, spec.world_size, id, spec.rank, &config);
    absl::Status status =
        SettleNew(&world_, result, "ncclCommInitRankConfig of the world", deadline);
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
    spdlog::debug("nccl: rank {} ncclCommInitRankConfig of the world ({} ranks, {}) in {}",
                  rank_, spec.world_size, options_.nonblocking ? "non-blocking" : "blocking",
                  absl::FormatDuration(absl::Now() - step));
    return absl::OkStatus();
  }

  // One ncclCommSplit of the world per kind, one after another (splits of one parent must not
  // overlap), in kind_index order with NOCOLOR where this rank has no group of the kind.
  absl::Status SplitGroups(const WorldSpec& spec) {
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
      const Result result =
          nccl().CommSplit(world_, split.color, split.key, &group->comm, &config);
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
      spdlog::debug("nccl: rank {} {} in {}", rank_, step,
                    absl::FormatDuration(absl::Now() - start));
    }
    return absl::OkStatus();
  }

  // A split is complete when the parent settles and, for a member, the child pointer NCCL
  // publishes at the end of its init job is set and the child settles too.
  absl::Status SettleSplit(FormedGroup* group, int color, Result result, absl::string_view step,
                           absl::Time deadline) {
    if (result != nccl::kSuccess && result != nccl::kInProgress) {
      return NcclStatus(result, step);
    }
    if (result == nccl::kSuccess && !options_.nonblocking) return absl::OkStatus();
    RETURN_IF_ERROR(Poll(world_, absl::StrCat(step, ", parent"), deadline));
    if (color == nccl::kSplitNoColor) return absl::OkStatus();
    return SettleNew(&group->comm, nccl::kInProgress, absl::StrCat(step, ", child"), deadline);
  }

  // The init method: a unique id per group (made by its local rank 0, read by the others in
  // one batched rendezvous get), then every init of this rank in one ncclGroupStart/End, so
  // NCCL initializes them concurrently.
  absl::Status InitGroups(const WorldSpec& spec, RendezvousClient* rendezvous) {
    absl::Time step = absl::Now();
    std::vector<GroupAssignment> ordered;
    for (size_t i : KindOrder(spec.groups)) ordered.push_back(spec.groups[i]);
    std::vector<nccl::UniqueId> ids(ordered.size());
    std::vector<std::string> keys;   // ids this rank reads
    std::vector<size_t> key_group;   // ... and the group each belongs to
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
                                                " init id(s) returned ", values->size(),
                                                " values"));
      }
      for (size_t k = 0; k < keys.size(); ++k) {
        ASSIGN_OR_RETURN(ids[key_group[k]], IdFromBytes((*values)[k], keys[k]));
      }
    }
    spdlog::debug("nccl: rank {} exchanged {} init id(s) ({} read) in {}", rank_, ids.size(),
                  keys.size(), absl::FormatDuration(absl::Now() - step));

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
        status = NcclStatus(result,
                            absl::StrCat("ncclCommInitRankConfig of group ", GroupName(group)));
      }
    }
    // The group is closed even after a failed init inside it.
    result = nccl().GroupEnd();
    if (status.ok() && result != nccl::kSuccess && result != nccl::kInProgress) {
      status = NcclStatus(result, absl::StrCat("ncclGroupEnd of ", slots.size(), " init(s)"));
    }
    if (status.ok() && (options_.nonblocking || result == nccl::kInProgress)) {
      for (FormedGroup* slot : slots) {
        status = SettleNew(&slot->comm, nccl::kInProgress,
                           absl::StrCat("ncclCommInitRankConfig of group ",
                                        GroupName(slot->assignment)),
                           deadline);
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

  // After a timed-out non-blocking grouped init: abort what NCCL has published (abort joins the
  // init thread, so nothing stores into that slot afterwards); a slot still unpublished may yet
  // be written by NCCL's thread, so it is deliberately leaked rather than freed under it.
  void AbandonInits() {
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

  // ncclCommCount / ncclCommUserRank must give the planned size and local rank.
  absl::Status CheckComm(CommHandle comm, int size, int rank, absl::string_view name) const {
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
                                              " of ", count, ", planned rank ", rank, " of ",
                                              size));
    }
    return absl::OkStatus();
  }

  absl::Status CheckChildren() {
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

  // One all-reduce of `count` floats in `group` on the builder's stream, waited for.
  absl::Status AllReduce(FormedGroup* group, void* buffer, size_t count, absl::string_view step,
                         absl::Time deadline, nccl::CudaStream stream) {
    const Result result = nccl().AllReduce(buffer, buffer, count, nccl::kFloat32, nccl::kSum,
                                           group->comm, stream);
    return Settle(group->comm, result, step, deadline);
  }

  // The checks of one group's validation; `*buffer` is freed by the caller.
  absl::Status RunValidation(FormedGroup* group, const WorldSpec& spec, void** buffer,
                             GroupValidation* out, nccl::CudaStream stream) {
    const std::string name = GroupName(group->assignment);
    const size_t count = static_cast<size_t>(spec.allreduce_elements);
    const size_t bytes = count * sizeof(float);
    std::vector<float> host(count, 1.0f);
    RETURN_IF_ERROR(CudaCheck(cuda().Malloc(buffer, bytes),
                              absl::StrCat("cudaMalloc of ", bytes, " bytes for ", name)));
    RETURN_IF_ERROR(
        CudaCheck(cuda().Memcpy(*buffer, host.data(), bytes, nccl::kCudaMemcpyHostToDevice),
                  absl::StrCat("cudaMemcpy of ones to the device for ", name)));
    // A copy from pageable memory may still be in flight when cudaMemcpy returns, and NCCL's
    // non-blocking stream does not wait for the legacy default stream: wait for it here.
    RETURN_IF_ERROR(CudaCheck(cuda().StreamSynchronize(nullptr),
                              absl::StrCat("cudaStreamSynchronize(0) after the copy for ", name)));

    const absl::Time start = absl::Now();
    RETURN_IF_ERROR(AllReduce(group, *buffer, count, absl::StrCat("ncclAllReduce of ", name),
                              absl::Now() + spec.timeout, stream));
    RETURN_IF_ERROR(CudaCheck(cuda().StreamSynchronize(stream),
                              absl::StrCat("cudaStreamSynchronize after ncclAllReduce of ", name)));
    out->latency_us = absl::ToDoubleMicroseconds(absl::Now() - start);

    std::fill(host.begin(), host.end(), 0.0f);
    RETURN_IF_ERROR(
        CudaCheck(cuda().Memcpy(host.data(), *buffer, bytes, nccl::kCudaMemcpyDeviceToHost),
                  absl::StrCat("cudaMemcpy of the result to the host for ", name)));
    const float expected = static_cast<float>(group->assignment.members.size());
    float minimum = host.front();
    size_t wrong = 0;
    for (float value : host) {
      minimum = std::min(minimum, value);
      if (value != expected) ++wrong;
    }
    out->allreduce_value = minimum;
    if (wrong > 0) {
      out->error = absl::StrCat(wrong, " of ", host.size(),
                                " all-reduce elements differ from the group size ",
                                group->assignment.members.size(), " (min ", minimum, ")");
      return absl::OkStatus();  // NCCL itself did not fail
    }
    out->ok = true;
    return absl::OkStatus();
  }

  // Validates one group. On its own thread (`own_thread`), the thread binds the device and
  // uses a stream of its own; otherwise the builder's stream.
  GroupValidation ValidateGroup(FormedGroup* group, const WorldSpec& spec, bool own_thread) {
    GroupValidation result;
    result.kind = group->assignment.kind;
    result.group_index = group->assignment.group_index;
    void* buffer = nullptr;
    nccl::CudaStream stream = stream_;
    absl::Status status = absl::OkStatus();
    if (own_thread) {
      status = CudaCheck(cuda().SetDevice(device_index_),
                         absl::StrCat("cudaSetDevice(", device_index_, ")"));
      if (status.ok()) {
        status = CudaCheck(cuda().StreamCreateWithFlags(&stream, nccl::kCudaStreamNonBlocking),
                           absl::StrCat("cudaStreamCreateWithFlags for ",
                                        GroupName(group->assignment)));
        if (!status.ok()) stream = nullptr;
      }
    }
    if (status.ok()) status = RunValidation(group, spec, &buffer, &result, stream);
    FreeBuffer(buffer, GroupName(group->assignment));
    if (own_thread && stream != nullptr) {
      const CudaError error = cuda().StreamDestroy(stream);
      if (error != 0) {
        spdlog::warn("nccl: rank {} cudaStreamDestroy: {}", rank_, library_->DescribeCuda(error));
      }
    }
    if (!status.ok()) {
      result.ok = false;
      result.error = status.ToString();
      group->failed = true;
    }
    spdlog::debug("nccl: rank {} validated {} ({} ranks): {} in {} us{}", rank_,
                  GroupName(group->assignment), group->assignment.members.size(),
                  result.ok ? "ok" : "FAILED", result.latency_us,
                  result.error.empty() ? "" : absl::StrCat(": ", result.error));
    return result;
  }

  // Bus bandwidth of the group: one warm-up all-reduce of `spec.bandwidth_bytes`, then
  // kBandwidthIterations timed back to back.
  void MeasureBandwidth(FormedGroup* group, const WorldSpec& spec, GroupValidation* out) {
    const int size = static_cast<int>(group->assignment.members.size());
    if (size == 1) return;
    const std::string name = GroupName(group->assignment);
    const size_t count =
        std::max<size_t>(1, static_cast<size_t>(spec.bandwidth_bytes) / sizeof(float));
    const size_t bytes = count * sizeof(float);
    void* buffer = nullptr;
    double seconds = 0;
    absl::Status status = [&]() -> absl::Status {
      RETURN_IF_ERROR(CudaCheck(cuda().Malloc(&buffer, bytes),
                                absl::StrCat("cudaMalloc of ", bytes, " bytes for ", name)));
      const std::string step = absl::StrCat("bandwidth ncclAllReduce of ", name);
      const std::string sync = absl::StrCat("cudaStreamSynchronize after ", step);
      RETURN_IF_ERROR(
          AllReduce(group, buffer, count, step, absl::Now() + spec.timeout, stream_));
      RETURN_IF_ERROR(CudaCheck(cuda().StreamSynchronize(stream_), sync));
      const absl::Time start = absl::Now();
      const absl::Time deadline = start + spec.timeout;
      for (int i = 0; i < kBandwidthIterations; ++i) {
        RETURN_IF_ERROR(AllReduce(group, buffer, count, step, deadline, stream_));
      }
      RETURN_IF_ERROR(CudaCheck(cuda().StreamSynchronize(stream_), sync));
      seconds = absl::ToDoubleSeconds(absl::Now() - start) / kBandwidthIterations;
      return absl::OkStatus();
    }();
    FreeBuffer(buffer, name);
    if (!status.ok()) {
      out->ok = false;
      out->error = absl::StrCat("bandwidth run: ", status.ToString());
      group->failed = true;
      return;
    }
    seconds = std::max(seconds, 1e-9);
    out->bus_bandwidth_gbps =
        2.0 * (size - 1) / size * static_cast<double>(bytes) / seconds / 1e9;
    spdlog::debug("nccl: rank {} bandwidth of {}: {} bytes in {} us, {} GB/s", rank_, name,
                  bytes, seconds * 1e6, out->bus_bandwidth_gbps);
  }

  void FreeBuffer(void* buffer, const std::string& name) {
    if (buffer == nullptr) return;
    const CudaError error = cuda().Free(buffer);
    if (error != 0) {
      spdlog::warn("nccl: rank {} cudaFree for {}: {}", rank_, name,
                   library_->DescribeCuda(error));
    }
  }

  // Finalize then destroy; abort instead when the communicator failed, is in an error state,
  // or does not finalize in time.
  void DestroyComm(CommHandle comm, bool failed, const std::string& name) {
    const absl::Time start = absl::Now();
    bool abort = failed;
    if (!abort) {
      Result state = nccl::kSuccess;
      const Result result = nccl().CommGetAsyncError(comm, &state);
      if (result != nccl::kSuccess || state != nccl::kSuccess) {
        spdlog::debug("nccl: rank {} {} is in state {} (query {}): aborting it", rank_, name,
                      state, result);
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

  const std::shared_ptr<const nccl::NcclLibrary> library_;
  const NcclBuilderOptions options_;
  // Aborts what this builder no longer holds; null without a library. Declared before the
  // communicators it may be handed.
  const std::unique_ptr<nccl::CommReaper> reaper_;
  CommHandle world_ = nullptr;  // NCCL may store into it from its init thread
  bool world_failed_ = false;
  nccl::CudaStream stream_ = nullptr;
  bool stream_created_ = false;  // a valid stream may be null in principle
  std::vector<std::unique_ptr<FormedGroup>> groups_;  // this rank's children, in kind order
  std::vector<std::unique_ptr<FormedGroup>> nocolor_slots_;  // NOCOLOR splits' (null) outputs
  bool groups_formed_ = false;
  int64_t epoch_ = 0;
  int rank_ = 0;
  int world_size_ = 0;
  int device_index_ = 0;
  absl::Duration timeout_ = absl::Seconds(60);
};

}  // namespace

std::unique_ptr<GroupBuilder> MakeNcclGroupBuilder(
    std::shared_ptr<const nccl::NcclLibrary> library, NcclBuilderOptions options) {
  return std::make_unique<NcclGroupBuilder>(std::move(library), options);
}

}  // namespace splitd::worker
