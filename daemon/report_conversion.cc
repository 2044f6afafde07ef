#include "daemon/report_conversion.h"

#include "daemon/core/status_fields.h"

namespace splitd::daemon {
namespace {

core::RankTimings ToRankTimings(const v1::PhaseTimings& timings) {
  core::RankTimings out;
  out.bootstrap_ms = timings.bootstrap_ms();
  out.split_ms = timings.split_ms();
  out.validate_ms = timings.validate_ms();
  out.groups_ready_ms = timings.groups_ready_ms();
  out.plan_received_unix_ms = timings.plan_received_unix_ms();
  out.world_connected_unix_ms = timings.world_connected_unix_ms();
  out.groups_ready_unix_ms = timings.groups_ready_unix_ms();
  return out;
}

}  // namespace

core::RankReport ToRankReport(const v1::ReportGroupStatusRequest& request) {
  core::RankReport report;
  report.member_id = request.member().member_id();
  report.session_token = request.member().session_token();
  report.epoch = request.epoch();
  report.rank = request.rank();
  report.fingerprint = request.fingerprint();
  report.phase = request.phase();
  report.layer = request.layer();
  report.error = request.error();
  report.detail = request.detail();
  report.groups.reserve(static_cast<size_t>(request.groups_size()));
  for (const v1::GroupReport& group : request.groups()) {
    core::RankReport::Group& entry = report.groups.emplace_back();
    entry.kind = group.kind();
    entry.backend = group.backend();
    entry.phase = group.phase();
    entry.allreduce_value = group.allreduce_value();
    entry.latency_us = group.latency_us();
    entry.bus_bandwidth_gbps = group.bus_bandwidth_gbps();
    entry.error = group.error();
  }
  report.timings = ToRankTimings(request.timings());
  return report;
}

v1::ReportGroupStatusRequest ToReportRequest(const std::string& cluster,
                                             const core::RankReport& report) {
  v1::ReportGroupStatusRequest request;
  request.mutable_member()->set_cluster(cluster);
  request.mutable_member()->set_member_id(report.member_id);
  request.mutable_member()->set_session_token(report.session_token);
  request.set_epoch(report.epoch);
  request.set_rank(report.rank);
  request.set_fingerprint(report.fingerprint);
  request.set_phase(report.phase);
  request.set_layer(report.layer);
  request.set_error(report.error);
  request.set_detail(report.detail);
  for (const core::RankReport::Group& entry : report.groups) {
    v1::GroupReport* group = request.add_groups();
    group->set_kind(entry.kind);
    group->set_backend(entry.backend);
    group->set_phase(entry.phase);
    group->set_allreduce_value(entry.allreduce_value);
    group->set_latency_us(entry.latency_us);
    group->set_bus_bandwidth_gbps(entry.bus_bandwidth_gbps);
    group->set_error(entry.error);
  }
  *request.mutable_timings() = core::ToPhaseTimings(report.timings);
  return request;
}

}  // namespace splitd::daemon
