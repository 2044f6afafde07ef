#ifndef SPLITD_WORKER_GLOO_ABANDONABLE_CALL_H_
#define SPLITD_WORKER_GLOO_ABANDONABLE_CALL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "worker/rendezvous_client.h"

namespace splitd::worker {

// A RendezvousClient in front of the agent's, for a Gloo call that may be abandoned. Release()
// waits for the calls in flight (they end at once when the agent's client is cancelled) and
// makes every later call fail with CANCELLED without touching the agent's client, which may then
// go away while the abandoned call still runs. Thread-safe.
class ReleasableClient : public RendezvousClient {
 public:
  explicit ReleasableClient(RendezvousClient* client) : client_(client) {}

  absl::Status Set(const std::string& key, const std::string& value) override;
  absl::StatusOr<std::vector<std::string>> Get(const std::vector<std::string>& keys,
                                               absl::Duration timeout) override;
  absl::StatusOr<int64_t> Add(const std::string& key, int64_t delta) override;
  bool Cancelled() const override;

  void Release();

 private:
  // The agent's client with one more call in flight, or null once released.
  RendezvousClient* Hold();
  void Unhold();

  mutable absl::Mutex mu_;
  RendezvousClient* client_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

// Runs `call` on a thread of its own and waits for it, unless `rendezvous` is cancelled first
// (a newer plan came, or the agent stops): then the call is left to end in the background and
// CANCELLED comes back at once. Gloo's pair connect blocks and cannot be interrupted (it ends
// within its timeout); this keeps such a wait from holding an agent back from the next epoch.
// `call` gets the rendezvous to use (a ReleasableClient) and keeps whatever it builds in objects
// it captures by shared ownership; the caller may read them once OK came back.
absl::Status RunAbandonable(const std::string& what, RendezvousClient* rendezvous,
                            std::function<absl::Status(RendezvousClient*)> call);

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_GLOO_ABANDONABLE_CALL_H_
