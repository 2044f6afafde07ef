#ifndef SPLITD_WORKER_NCCL_NCCL_GROUP_BUILDER_INTERNAL_H_
#define SPLITD_WORKER_NCCL_NCCL_GROUP_BUILDER_INTERNAL_H_

// The "cuda:nccl" builder's class, shared by its source files; not part of its interface
// (worker/nccl/nccl_group_builder.h). nccl_group_builder.cc holds the NCCL and CUDA helpers and
// the teardown, nccl_group_builder_world.cc the world bootstrap, nccl_group_builder_groups.cc the
// subgroups (split or init), nccl_group_builder_shrink.cc ShrinkWorld and
// nccl_group_builder_validate.cc the validation all-reduces.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "worker/group_builder.h"
#include "worker/nccl/comm_reaper.h"
#include "worker/nccl/nccl_api.h"
#include "worker/nccl/nccl_group_builder.h"
#include "worker/nccl/nccl_library.h"
#include "worker/rendezvous_client.h"

namespace splitd::worker::nccl_internal {

using nccl::CommHandle;
using nccl::CudaError;
using nccl::Result;

inline constexpr char kBackend[] = "cuda:nccl";

std::string IdBytes(const nccl::UniqueId& id);
absl::StatusOr<nccl::UniqueId> IdFromBytes(const std::string& bytes, const std::string& key);
// The same code with `context` in front of the message.
absl::Status Annotate(const absl::Status& status, absl::string_view context);

// See MakeNcclGroupBuilder (worker/nccl/nccl_group_builder.h).
class NcclGroupBuilder final : public GroupBuilder {
 public:
  NcclGroupBuilder(std::shared_ptr<const nccl::NcclLibrary> library, NcclBuilderOptions options)
      : library_(std::move(library)),
        options_(options),
        reaper_(library_ == nullptr ? nullptr : std::make_unique<nccl::CommReaper>(library_)) {}

  // Release waits for the background aborts (bounded); the reaper then stops.
  ~NcclGroupBuilder() override { Release(); }

  std::string backend() const override { return kBackend; }

  absl::Status BootstrapWorld(const WorldSpec& spec, RendezvousClient* rendezvous) override;

  absl::Status FormGroups(const WorldSpec& spec, RendezvousClient* rendezvous) override;

  absl::StatusOr<std::vector<GroupValidation>> Validate(const WorldSpec& spec) override;

  bool CanShrink() const override { return library_ != nullptr && library_->supports_shrink(); }

  absl::Status ShrinkWorld(const WorldSpec& spec, const std::vector<int32_t>& previous_ranks,
                           RendezvousClient* rendezvous) override;

  void Abort() override;

  void AbortInBackground() override;

  bool TearingDown() const override { return reaper_ != nullptr && reaper_->pending() > 0; }

  void Release() override;

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

  absl::Status NcclStatus(Result result, absl::string_view step) const;

  absl::Status CudaCheck(CudaError error, absl::string_view step) const;

  // Our ncclConfig_t is the 2.28 layout: claim at most a 2.28 version for it, so that a newer
  // library does not look for fields past its end.
  nccl::Config MakeConfig() const;

  // Polls `comm` until it leaves ncclInProgress; DEADLINE_EXCEEDED at `deadline`.
  absl::Status Poll(CommHandle comm, absl::string_view step, absl::Time deadline) const;

  // The outcome of a call on `comm` that returned `result`: in non-blocking mode (or whenever
  // NCCL says ncclInProgress) the call is done only once the communicator's state settles.
  absl::Status Settle(CommHandle comm, Result result, absl::string_view step,
                      absl::Time deadline) const;

  // Waits until NCCL has stored the new communicator into `*slot` (its init job does so from its
  // own thread in non-blocking mode) and that communicator has settled.
  absl::Status SettleNew(CommHandle* slot, Result result, absl::string_view step,
                         absl::Time deadline) const;

  // The steps of ShrinkWorld (nccl_group_builder_shrink.cc). The ranks of the held world that
  // `spec` leaves out, once the held world and `spec` allow a shrink.
  absl::StatusOr<std::vector<int>> CheckShrink(const WorldSpec& spec,
                                               const std::vector<int32_t>& previous_ranks) const;
  // ncclCommShrink of the world into `*slot`, waited for; on failure the world is marked failed
  // and what NCCL created is aborted (`*slot` is leaked on a timeout, as NCCL may still write it).
  absl::Status CommShrinkWorld(const WorldSpec& spec, std::vector<int>* excluded,
                               const std::string& step, absl::Time start,
                               std::unique_ptr<CommHandle>* slot);
  // Makes `shrunk_world` the world of `spec` and hands the old one to the background abort.
  absl::Status AdoptShrunkWorld(const WorldSpec& spec, CommHandle shrunk_world, absl::Time start,
                                absl::Time groups_aborted, absl::Time shrunk);

  // Hands `*comm` (when NCCL has published one) to the background abort and clears it.
  void AbortLater(CommHandle* comm, const std::string& name);

  // Waits for the background aborts, at most the step timeout: a builder released leaves
  // nothing behind unless an abort hangs.
  void AwaitReaper();

  void DestroyStream();

  // Aborts `*comm` (when NCCL has published one) and clears it.
  void AbortNow(CommHandle* comm, const std::string& name);

  absl::Status ConnectWorld(const WorldSpec& spec, RendezvousClient* rendezvous);

  // One ncclCommSplit of the world per kind, one after another (splits of one parent must not
  // overlap), in kind_index order with NOCOLOR where this rank has no group of the kind.
  absl::Status SplitGroups(const WorldSpec& spec);

  // A split is complete when the parent settles and, for a member, the child pointer NCCL
  // publishes at the end of its init job is set and the child settles too.
  absl::Status SettleSplit(FormedGroup* group, int color, Result result, absl::string_view step,
                           absl::Time deadline);

  // The init method: a unique id per group (made by its local rank 0, read by the others in
  // one batched rendezvous get), then every init of this rank in one ncclGroupStart/End, so
  // NCCL initializes them concurrently.
  absl::Status InitGroups(const WorldSpec& spec, RendezvousClient* rendezvous);
  // The init ids of `ordered` (this rank's groups in kind order): made and published where this
  // rank is the group's local rank 0, read in one batched get otherwise. `step` is when the
  // exchange began (for the log).
  absl::StatusOr<std::vector<nccl::UniqueId>> ExchangeInitIds(
      const std::vector<GroupAssignment>& ordered, const WorldSpec& spec,
      RendezvousClient* rendezvous, absl::Time step);

  // After a timed-out non-blocking grouped init: abort what NCCL has published (abort joins the
  // init thread, so nothing stores into that slot afterwards); a slot still unpublished may yet
  // be written by NCCL's thread, so it is deliberately leaked rather than freed under it.
  void AbandonInits();

  // ncclCommCount / ncclCommUserRank must give the planned size and local rank.
  absl::Status CheckComm(CommHandle comm, int size, int rank, absl::string_view name) const;

  absl::Status CheckChildren();

  // One all-reduce of `count` floats in `group` on the builder's stream, waited for.
  absl::Status AllReduce(FormedGroup* group, void* buffer, size_t count, absl::string_view step,
                         absl::Time deadline, nccl::CudaStream stream);

  // The checks of one group's validation; `*buffer` is freed by the caller.
  absl::Status RunValidation(FormedGroup* group, const WorldSpec& spec, void** buffer,
                             GroupValidation* out, nccl::CudaStream stream);

  // Validates one group. On its own thread (`own_thread`), the thread binds the device and
  // uses a stream of its own; otherwise the builder's stream.
  GroupValidation ValidateGroup(FormedGroup* group, const WorldSpec& spec, bool own_thread);

  // Bus bandwidth of the group: one warm-up all-reduce of `spec.bandwidth_bytes`, then
  // kBandwidthIterations timed back to back.
  void MeasureBandwidth(FormedGroup* group, const WorldSpec& spec, GroupValidation* out);

  void FreeBuffer(void* buffer, const std::string& name);

  // Finalize then destroy; abort instead when the communicator failed, is in an error state,
  // or does not finalize in time.
  void DestroyComm(CommHandle comm, bool failed, const std::string& name);

  const std::shared_ptr<const nccl::NcclLibrary> library_;
  const NcclBuilderOptions options_;
  // Aborts what this builder no longer holds; null without a library. Declared before the
  // communicators it may be handed.
  const std::unique_ptr<nccl::CommReaper> reaper_;
  CommHandle world_ = nullptr;  // NCCL may store into it from its init thread
  bool world_failed_ = false;
  nccl::CudaStream stream_ = nullptr;
  bool stream_created_ = false;                       // a valid stream may be null in principle
  std::vector<std::unique_ptr<FormedGroup>> groups_;  // this rank's children, in kind order
  std::vector<std::unique_ptr<FormedGroup>> nocolor_slots_;  // NOCOLOR splits' (null) outputs
  bool groups_formed_ = false;
  int64_t epoch_ = 0;
  int rank_ = 0;
  int world_size_ = 0;
  int device_index_ = 0;
  absl::Duration timeout_ = absl::Seconds(60);
};

}  // namespace splitd::worker::nccl_internal

#endif  // SPLITD_WORKER_NCCL_NCCL_GROUP_BUILDER_INTERNAL_H_
