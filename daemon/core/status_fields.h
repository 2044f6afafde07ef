#ifndef SPLITD_DAEMON_CORE_STATUS_FIELDS_H_
#define SPLITD_DAEMON_CORE_STATUS_FIELDS_H_

#include <cstdint>

#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"
#include "splitd/v1/status.pb.h"

namespace splitd::core {

// True for the phases a rank may report (BOOTSTRAPPING through FAILED).
inline bool IsReportPhase(v1::Phase phase) {
  return phase >= v1::PHASE_BOOTSTRAPPING && phase <= v1::PHASE_FAILED;
}

// `time` as the Timestamp that status and events carry.
inline google::protobuf::Timestamp ToTimestamp(absl::Time time) {
  google::protobuf::Timestamp ts;
  const int64_t nanos = absl::ToUnixNanos(time);
  ts.set_seconds(nanos / 1000000000);
  ts.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return ts;
}

}  // namespace splitd::core

#endif  // SPLITD_DAEMON_CORE_STATUS_FIELDS_H_
