#ifndef SPLITD_DAEMON_STORE_MEMORY_STATE_STORE_H_
#define SPLITD_DAEMON_STORE_MEMORY_STATE_STORE_H_

#include <vector>

#include "daemon/store/record_store.h"

namespace splitd::store {

// StateStore that keeps everything in process memory: nothing survives a restart.
// For tests, and for daemons started without --data_dir. Thread-safe.
class MemoryStateStore : public RecordStore {
 protected:
  absl::Status Persist(const std::vector<const internal::LogRecord*>&) override {
    return absl::OkStatus();
  }
};

}  // namespace splitd::store

#endif  // SPLITD_DAEMON_STORE_MEMORY_STATE_STORE_H_
