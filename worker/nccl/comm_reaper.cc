#include "worker/nccl/comm_reaper.h"

#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"

namespace splitd::nccl {

struct CommReaper::State {
  struct Job {
    CommHandle comm = nullptr;
    int device = 0;
    std::string name;
    absl::Time queued;
  };

  explicit State(std::shared_ptr<const NcclLibrary> library) : library(std::move(library)) {}

  const std::shared_ptr<const NcclLibrary> library;
  absl::Mutex mu;
  std::deque<Job> queue ABSL_GUARDED_BY(mu);
  int pending ABSL_GUARDED_BY(mu) = 0;  // queued plus the one being aborted
  bool stop ABSL_GUARDED_BY(mu) = false;
};

CommReaper::CommReaper(std::shared_ptr<const NcclLibrary> library)
    : state_(std::make_shared<State>(std::move(library))) {}

CommReaper::~CommReaper() {
  int pending = 0;
  {
    absl::MutexLock lock(&state_->mu);
    state_->stop = true;
    pending = state_->pending;
  }
  if (!thread_.joinable()) return;
  if (pending == 0) {
    thread_.join();  // the loop returns at once: stopping and nothing queued
    return;
  }
  spdlog::warn("nccl: {} communicator abort(s) still running; they finish in the background",
               pending);
  thread_.detach();
}

void CommReaper::Abort(CommHandle comm, int device, std::string name) {
  if (comm == nullptr) return;
  {
    absl::MutexLock lock(&state_->mu);
    state_->queue.push_back(State::Job{comm, device, std::move(name), absl::Now()});
    ++state_->pending;
  }
  if (!thread_.joinable()) thread_ = std::thread(&CommReaper::Loop, state_);
}

bool CommReaper::Await(absl::Duration timeout) {
  absl::MutexLock lock(&state_->mu);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) { return state_->pending == 0; };
  return state_->mu.AwaitWithTimeout(absl::Condition(&done), timeout);
}

int CommReaper::pending() const {
  absl::MutexLock lock(&state_->mu);
  return state_->pending;
}

void CommReaper::Loop(std::shared_ptr<State> state) {
  const NcclLibrary& library = *state->library;
  int bound_device = -1;
  while (true) {
    State::Job job;
    {
      absl::MutexLock lock(&state->mu);
      auto ready = [&state]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) {
        return state->stop || !state->queue.empty();
      };
      state->mu.Await(absl::Condition(&ready));
      if (state->queue.empty()) return;  // stopping with nothing left
      job = std::move(state->queue.front());
      state->queue.pop_front();
    }
    if (job.device != bound_device) {
      const CudaError error = library.cuda().SetDevice(job.device);
      if (error != 0) {
        spdlog::warn("nccl: background abort of {}: cudaSetDevice({}): {}", job.name, job.device,
                     library.DescribeCuda(error));
      } else {
        bound_device = job.device;
      }
    }
    const absl::Time start = absl::Now();
    const Result result = library.nccl().CommAbort(job.comm);
    if (result != kSuccess) {
      spdlog::warn("nccl: background ncclCommAbort of {}: {}", job.name,
                   library.DescribeNccl(result));
    } else {
      spdlog::debug("nccl: aborted {} in the background in {} ({} after it was handed over)",
                    job.name, absl::FormatDuration(absl::Now() - start),
                    absl::FormatDuration(absl::Now() - job.queued));
    }
    absl::MutexLock lock(&state->mu);
    --state->pending;
  }
}

}  // namespace splitd::nccl
