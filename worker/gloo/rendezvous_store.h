#ifndef SPLITD_WORKER_GLOO_RENDEZVOUS_STORE_H_
#define SPLITD_WORKER_GLOO_RENDEZVOUS_STORE_H_

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gloo/rendezvous/store.h"
#include "worker/rendezvous_client.h"

namespace splitd::worker {

// A gloo::rendezvous::Store over the daemon's rendezvous space, so Gloo's full-mesh bootstrap
// (world, and the `init` method's groups) runs through RendezvousClient.
//
// get() blocks until the key exists (Gloo's connectFullMesh calls get without a wait first);
// wait() fetches the keys it waited for in one Get and keeps their values, so the get() that
// Gloo issues right after costs no further call. A timeout of zero (Gloo's "no timeout") or a
// call without one is bounded by `default_timeout` instead, so no step waits forever. A wait
// never ends sooner than `min_wait`: a context whose timeout is kept short for its pairs' sake
// (PairTimeout) still waits the whole bound for its peers' keys.
//
// Failures are thrown as GlooStatusError (a gloo::IoException) carrying the client's status,
// because Gloo expects a failing Store to throw; callers turn them back into statuses.
// Thread-safe; does not own `client`, which must outlive it.
class RendezvousStore : public ::gloo::rendezvous::Store {
 public:
  RendezvousStore(RendezvousClient* client, absl::Duration default_timeout,
                  absl::Duration min_wait = absl::ZeroDuration());

  void set(const std::string& key, const std::vector<char>& data) override;
  std::vector<char> get(const std::string& key) override;

  // Declares keys that are fetched together: the first get() or wait() of any of them fetches
  // every one not cached yet in a single call. A full-mesh bootstrap reads one key per peer,
  // one peer after another; declared as a batch, that is one round trip instead of size - 1.
  // Only batch keys that every rank sets before it waits for any of them.
  void FetchTogether(const std::vector<std::string>& keys);
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override;

 private:
  // Fetches the `keys` not cached yet and caches them.
  void Fetch(const std::vector<std::string>& keys, absl::Duration timeout);

  RendezvousClient* const client_;
  const absl::Duration default_timeout_;
  const absl::Duration min_wait_;
  absl::Mutex mu_;
  // Values fetched by wait() and not yet taken by get().
  std::map<std::string, std::vector<char>> cache_ ABSL_GUARDED_BY(mu_);
  // Batch index of each batched key, and the batches not fetched yet.
  std::map<std::string, size_t> batch_of_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<std::string>> batches_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> fetched_ ABSL_GUARDED_BY(mu_);
};

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_GLOO_RENDEZVOUS_STORE_H_
