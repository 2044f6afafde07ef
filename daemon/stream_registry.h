#ifndef SPLITD_DAEMON_STREAM_REGISTRY_H_
#define SPLITD_DAEMON_STREAM_REGISTRY_H_

#include <atomic>
#include <cstddef>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/status.h"

namespace splitd::daemon {

// An open server stream as StreamRegistry sees it, whatever it sends (StreamReactor is the
// implementation). Reference counted: the stream deletes itself when its last reference goes.
//
// Threading: Ref, Unref, Wake and End may be called from any thread.
class OpenStream {
 public:
  OpenStream(const OpenStream&) = delete;
  OpenStream& operator=(const OpenStream&) = delete;

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Sends what there is to send now, or after the write in flight.
  virtual void Wake() = 0;
  // Ends the stream with `status` once the write in flight, if any, is done. Only the first
  // ending counts.
  virtual void End(const grpc::Status& status) = 0;

 protected:
  OpenStream() = default;  // the creator holds the first reference
  virtual ~OpenStream() = default;

 private:
  std::atomic<int> refs_{1};
};

// The open streams of a service, by group (the cluster a plan stream follows; one group for
// event streams), so that a change reaches its group's streams and shutdown ends them all.
// Streams leave when gRPC is done with them.
//
// Threading: thread-safe. WakeGroup only queues the group: the registry's own waker thread wakes
// its streams, so the caller (the call whose change completed a world, say) is answered without
// waiting for thousands of streams. A group queued again while it is being woken is woken again.
// A stream is called (Wake, End) with a reference held and without the registry's lock, so it
// may call back into the registry.
class StreamRegistry {
 public:
  StreamRegistry();
  // Shuts down (Shutdown) and joins the waker thread.
  ~StreamRegistry();

  // The status of every stream ended by Shutdown or refused after it.
  static grpc::Status ShuttingDown();

  // Adds `stream` to `group`; false once Shutdown ran (the stream is not added).
  bool Add(const std::string& group, OpenStream* stream) ABSL_LOCKS_EXCLUDED(mu_);
  // Removes `stream` from `group`, if it is there.
  void Remove(const std::string& group, OpenStream* stream) ABSL_LOCKS_EXCLUDED(mu_);

  // Has every stream of `group` woken soon, on the waker thread.
  void WakeGroup(const std::string& group) ABSL_LOCKS_EXCLUDED(mu_);
  // Ends every stream with ShuttingDown(); Add refuses from now on.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  // How many streams are registered.
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Each stream of `group` (every group when null), with a reference taken for the caller.
  std::vector<OpenStream*> RefStreamsLocked(const std::string* group) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The waker thread: wakes the streams of each queued group until Shutdown.
  void WakeLoop() ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::set<OpenStream*>> groups_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> to_wake_ ABSL_GUARDED_BY(mu_);  // each group at most once
  std::set<std::string> queued_ ABSL_GUARDED_BY(mu_);
  std::thread waker_;
};

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_STREAM_REGISTRY_H_
