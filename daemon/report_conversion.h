#ifndef SPLITD_DAEMON_REPORT_CONVERSION_H_
#define SPLITD_DAEMON_REPORT_CONVERSION_H_

#include <string>

#include "daemon/core/rank_report.h"
#include "splitd/v1/agent_service.pb.h"

namespace splitd::daemon {

// The ReportGroupStatus request (an agent's call, or one read back from the store) as the
// core's report: every field the core reads, copied as sent, the session token too; the
// cluster is not (the caller chose the cluster's Membership by it). Nothing is checked:
// core::Membership refuses what is malformed.
core::RankReport ToRankReport(const v1::ReportGroupStatusRequest& request);

// A core report of a rank of `cluster` as the ReportGroupStatus request the store keeps (a
// stall's report, written by the daemon). Every field is written as it is, the session token
// too (empty in the daemon's own reports).
v1::ReportGroupStatusRequest ToReportRequest(const std::string& cluster,
                                             const core::RankReport& report);

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_REPORT_CONVERSION_H_
