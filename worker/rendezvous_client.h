#ifndef SPLITD_WORKER_RENDEZVOUS_CLIENT_H_
#define SPLITD_WORKER_RENDEZVOUS_CLIENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace splitd::worker {

// The rendezvous key-value space of one (cluster, epoch), as the daemon offers it to agents
// (AgentService.KvSet/KvGet/KvAdd). Backends exchange bootstrap data through it.
// Implementations are thread-safe.
class RendezvousClient {
 public:
  virtual ~RendezvousClient() = default;

  // Sets `key` to `value`. Setting an existing key again replaces it.
  virtual absl::Status Set(const std::string& key, const std::string& value) = 0;

  // Returns the values of `keys`, in order, once all exist; DEADLINE_EXCEEDED after `timeout`.
  virtual absl::StatusOr<std::vector<std::string>> Get(const std::vector<std::string>& keys,
                                                       absl::Duration timeout) = 0;

  // Adds `delta` to the counter `key` (created at 0) and returns the new value.
  virtual absl::StatusOr<int64_t> Add(const std::string& key, int64_t delta) = 0;
  // True once the epoch's rendezvous was given up (the agent stops, or a newer plan came): a
  // caller blocked in something that does not call the client may stop waiting for it.
  virtual bool Cancelled() const { return false; }
};

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_RENDEZVOUS_CLIENT_H_
