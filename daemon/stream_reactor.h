#ifndef SPLITD_DAEMON_STREAM_REACTOR_H_
#define SPLITD_DAEMON_STREAM_REACTOR_H_

#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "daemon/service_call.h"
#include "daemon/stream_registry.h"
#include "grpcpp/support/server_callback.h"
#include "grpcpp/support/status.h"

namespace splitd::daemon {

// A server stream on the callback API that sends what Next() yields: one write in flight at a
// time, and after each write it pulls again, so a wake-up during a write is not lost and a
// backlog drains until Next() has nothing. The stream finishes exactly once: with Next()'s error,
// with the first End (after the write in flight), CANCELLED when the client goes away, or
// UNAVAILABLE `write_failed` when a write fails; the final status is booked through its ServiceCall
// (metrics, debug log). Nothing is sent before Open, so a call refused by its handler only
// ends.
//
// Lifetime: reference counted (OpenStream). gRPC holds the first reference until OnDone; a
// registry or subscription that wakes or ends the stream from another thread holds one while
// it does.
//
// Threading: Wake, End and gRPC's callbacks may run on any thread, concurrently. Next runs
// under the stream's lock, one call at a time, so the state a subclass keeps for it needs no
// lock of its own.
template <typename Response>
class StreamReactor : public grpc::ServerWriteReactor<Response>, public OpenStream {
 public:
  StreamReactor(ServiceCall call, std::string write_failed)
      : call_(call), write_failed_(std::move(write_failed)) {}

  // Joins `group` of `registry` (which must outlive the stream), then sends what there is. A
  // registry that has shut down ends the stream with StreamRegistry::ShuttingDown() instead.
  void Open(StreamRegistry* registry, std::string group) {
    registry_ = registry;
    group_ = std::move(group);
    if (!registry_->Add(group_, this)) {
      End(StreamRegistry::ShuttingDown());
      return;
    }
    Opening();
    {
      absl::MutexLock lock(&mu_);
      opened_ = true;
    }
    Wake();
  }

  // Ends a stream its handler refused (instead of Open), with `status` converted once.
  void Refuse(const absl::Status& status) { End(ToGrpcStatus(status)); }

  void Wake() final {
    bool write = false;
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (!opened_ || finished_ || finishing_.has_value()) return;
      if (writing_) return;  // OnWriteDone pulls again
      absl::StatusOr<std::optional<Response>> next = Next();
      if (!next.ok()) {
        finished_ = true;
        finish = ToGrpcStatus(next.status());
      } else if (next->has_value()) {
        response_ = **std::move(next);
        writing_ = true;
        write = true;
      }
    }
    if (write) this->StartWrite(&response_);
    if (finish.has_value()) FinishOnce(*finish);
  }

  void End(const grpc::Status& status) final {
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || finishing_.has_value()) return;
      if (writing_) {
        finishing_ = status;
        return;
      }
      finished_ = true;
    }
    FinishOnce(status);
  }

  void OnWriteDone(bool ok) final {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (finishing_.has_value() || !ok) {
        if (!finished_) {
          finished_ = true;
          finish = finishing_.value_or(grpc::Status(grpc::StatusCode::UNAVAILABLE, write_failed_));
        }
      }
    }
    if (finish.has_value()) {
      FinishOnce(*finish);
      return;
    }
    Wake();
  }

  void OnCancel() final { End(grpc::Status::CANCELLED); }

  void OnDone() final {
    Closed();
    if (registry_ != nullptr) registry_->Remove(group_, this);
    Unref();
  }

 protected:
  // The next message to send; nullopt while there is none; an error ends the stream with it.
  virtual absl::StatusOr<std::optional<Response>> Next() = 0;
  // Run once by Open, after the stream joined its registry and before the first Wake.
  virtual void Opening() {}
  // Run once by OnDone, when gRPC is done with the stream.
  virtual void Closed() {}

 private:
  void FinishOnce(const grpc::Status& status) {
    call_.Ended(status);
    this->Finish(status);
  }

  const ServiceCall call_;
  const std::string write_failed_;
  // Set by Open on the handler's thread; read by OnDone, which gRPC runs after the handler.
  StreamRegistry* registry_ = nullptr;
  std::string group_;

  absl::Mutex mu_;
  bool opened_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> finishing_ ABSL_GUARDED_BY(mu_);  // End during a write
  Response response_;                                           // owned by the write in flight
};

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_STREAM_REACTOR_H_
