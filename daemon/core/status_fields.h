#ifndef SPLITD_DAEMON_CORE_STATUS_FIELDS_H_
#define SPLITD_DAEMON_CORE_STATUS_FIELDS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "daemon/core/rank_report.h"
#include "google/protobuf/timestamp.pb.h"
#include "splitd/v1/status.pb.h"

namespace splitd::core {

// True for the phases a rank may report (BOOTSTRAPPING through FAILED).
inline bool IsReportPhase(v1::Phase phase) {
  return phase >= v1::PHASE_BOOTSTRAPPING && phase <= v1::PHASE_FAILED;
}

// The phase of one group entry (at `field`) of a report in `report_phase`: a report phase, and
// READY or FAILED in a READY report. INVALID_ARGUMENT naming the field otherwise.
inline absl::Status CheckEntryPhase(absl::string_view field, v1::Phase entry_phase,
                                    v1::Phase report_phase) {
  if (!IsReportPhase(entry_phase)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".phase must be one of BOOTSTRAPPING..FAILED, got ", v1::Phase_Name(entry_phase)));
  }
  if (report_phase == v1::PHASE_READY && entry_phase != v1::PHASE_READY &&
      entry_phase != v1::PHASE_FAILED) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".phase must be READY or FAILED in a READY report, got ",
                     v1::Phase_Name(entry_phase)));
  }
  return absl::OkStatus();
}

// `time` as the Timestamp that status and events carry.
inline google::protobuf::Timestamp ToTimestamp(absl::Time time) {
  google::protobuf::Timestamp ts;
  const int64_t nanos = absl::ToUnixNanos(time);
  ts.set_seconds(nanos / 1000000000);
  ts.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return ts;
}

// A rank's timings as status carries them (MemberStatus.timings).
inline v1::PhaseTimings ToPhaseTimings(const RankTimings& timings) {
  v1::PhaseTimings out;
  out.set_bootstrap_ms(timings.bootstrap_ms);
  out.set_split_ms(timings.split_ms);
  out.set_validate_ms(timings.validate_ms);
  out.set_groups_ready_ms(timings.groups_ready_ms);
  out.set_plan_received_unix_ms(timings.plan_received_unix_ms);
  out.set_world_connected_unix_ms(timings.world_connected_unix_ms);
  out.set_groups_ready_unix_ms(timings.groups_ready_unix_ms);
  return out;
}

}  // namespace splitd::core

#endif  // SPLITD_DAEMON_CORE_STATUS_FIELDS_H_
