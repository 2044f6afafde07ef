#ifndef SPLITD_TESTS_TESTING_IN_MEMORY_RENDEZVOUS_H_
#define SPLITD_TESTS_TESTING_IN_MEMORY_RENDEZVOUS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "worker/rendezvous_client.h"

namespace splitd::testing {

// A RendezvousClient fake: one in-process key-value space shared by every rank of a test (one
// thread per rank). Get blocks until all keys exist or its timeout passes (DEADLINE_EXCEEDED),
// as the daemon's KvGet does. Counts calls so tests can assert how much a backend talks to the
// rendezvous space. Thread-safe.
class InMemoryRendezvous : public worker::RendezvousClient {
 public:
  absl::Status Set(const std::string& key, const std::string& value) override;
  absl::StatusOr<std::vector<std::string>> Get(const std::vector<std::string>& keys,
                                               absl::Duration timeout) override;
  absl::StatusOr<int64_t> Add(const std::string& key, int64_t delta) override;

  // Calls made so far, per method.
  int64_t set_calls() const;
  int64_t get_calls() const;
  int64_t add_calls() const;
  int64_t total_calls() const;

  // Every key set so far, sorted.
  std::vector<std::string> Keys() const;

 private:
  bool AllPresentLocked(const std::vector<std::string>& keys) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, std::string> values_ ABSL_GUARDED_BY(mu_);
  int64_t set_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t get_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t add_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace splitd::testing

#endif  // SPLITD_TESTS_TESTING_IN_MEMORY_RENDEZVOUS_H_
