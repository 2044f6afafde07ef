#ifndef SPLITD_WORKER_NCCL_COMM_REAPER_H_
#define SPLITD_WORKER_NCCL_COMM_REAPER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "worker/nccl/nccl_api.h"
#include "worker/nccl/nccl_library.h"

namespace splitd::nccl {

// Aborts NCCL communicators on a background thread, so that tearing down what an epoch no longer
// needs (ncclCommAbort took about 0.5 s per communicator on H200) does not hold up forming what
// replaces it. NCCL allows calls on different communicators from different threads; a
// communicator handed over here must not be touched by anyone else afterwards. Abort, never
// finalize or destroy: the communicators handed over may have a dead peer. The thread binds each
// communicator's device (cudaSetDevice) before aborting it, as a new thread's current device is
// device 0 and NCCL's teardown frees device memory in the current context.
//
// Threading: the methods are called from one owner thread; the aborts run, in hand-over order,
// on one thread of the reaper's own, started at the first Abort. The destructor does not wait:
// the owner calls Await with its bound first. Aborts still running then finish on the detached
// thread, which keeps the library loaded and touches nothing of the owner.
class CommReaper {
 public:
  explicit CommReaper(std::shared_ptr<const NcclLibrary> library);
  ~CommReaper();

  CommReaper(const CommReaper&) = delete;
  CommReaper& operator=(const CommReaper&) = delete;

  // Queues ncclCommAbort of `comm` (bound to CUDA device `device`); `name` is for the logs. A
  // null `comm` is ignored.
  void Abort(CommHandle comm, int device, std::string name);

  // Waits until every abort handed over has returned, at most `timeout`; true when none is left.
  bool Await(absl::Duration timeout);

  // Aborts handed over that have not returned yet.
  int pending() const;

 private:
  struct State;
  static void Loop(std::shared_ptr<State> state);

  const std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace splitd::nccl

#endif  // SPLITD_WORKER_NCCL_COMM_REAPER_H_
