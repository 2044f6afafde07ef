#ifndef SPLITD_WORKER_NCCL_NCCL_GROUP_BUILDER_H_
#define SPLITD_WORKER_NCCL_NCCL_GROUP_BUILDER_H_

#include <memory>

#include "worker/group_builder.h"
#include "worker/nccl/nccl_library.h"

namespace splitd::worker {

struct NcclBuilderOptions {
  // Create every communicator with config.blocking = 0: NCCL calls return ncclInProgress and
  // the builder polls ncclCommGetAsyncError until `spec.timeout`, then aborts the communicator
  // and returns DEADLINE_EXCEEDED. Blocking mode (the default) cannot bound a hung peer.
  bool nonblocking = false;
  // Reserved: connect every peer at creation instead of at the first collective.
  bool eager_connect = false;
  // Run the groups' validation all-reduces one after another (kind order) instead of side by
  // side on one thread and stream per group.
  bool serial_validation = false;
  // ShrinkWorld with NCCL_SHRINK_ABORT (stop the parent's in-flight work first; no resources
  // shared with it): the safe mode when a removed rank may be dead. false: NCCL_SHRINK_DEFAULT,
  // which needs the parent idle.
  bool shrink_with_abort = true;
};

// The "cuda:nccl" backend: an NCCL world communicator bound to `spec.device_index`, created
// from the unique id rank 0 publishes through the rendezvous space; subgroups formed by
// `split` (one ncclCommSplit of the world per kind, serialized, in kind order on every rank)
// or `init` (a unique id per group, all of this rank's inits in one ncclGroupStart/End);
// validated by a float32 all-reduce of ones on the device, the groups side by side. Every NCCL and
// CUDA failure is a status naming the step. Calls come from one thread, as GroupBuilder says; the
// builder sets the CUDA device of that thread at each step. Communicators it gives up (the old
// groups and world after ShrinkWorld, everything at AbortInBackground) are aborted on a thread of
// its own (nccl::CommReaper) while the next ones form; Release, Abort and the destructor wait for
// those aborts, at most the last spec's timeout. A null `library` gives a builder whose every step
// is FAILED_PRECONDITION.
std::unique_ptr<GroupBuilder> MakeNcclGroupBuilder(std::shared_ptr<const nccl::NcclLibrary> library,
                                                   NcclBuilderOptions options);

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_NCCL_NCCL_GROUP_BUILDER_H_
