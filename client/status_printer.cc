#include "client/status_printer.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "client/table_printer.h"

namespace splitd::cli {
namespace {

std::string WithoutPrefix(const std::string& name, absl::string_view prefix, int number) {
  if (name.empty()) return absl::StrCat(number);
  absl::string_view view = name;
  absl::ConsumePrefix(&view, prefix);
  return std::string(view);
}

// Microseconds or milliseconds with one decimal; "-" for a figure not (yet) reported.
std::string Figure(std::optional<double> value) {
  if (!value.has_value()) return "-";
  return absl::StrFormat("%.1f", *value);
}

std::string MaxLatency(const v1::GroupKindStatus& kind) {
  if (kind.validations().empty()) return "-";
  return Figure(kind.max_latency_us());
}

// Ranks as a number, spares (rank -1) as "-".
std::string Rank(const v1::MemberStatus& member) {
  return member.rank() < 0 ? "-" : absl::StrCat(member.rank());
}

std::string ReadyMs(const v1::MemberStatus& member) {
  const double ms = member.timings().groups_ready_ms();
  return ms > 0 ? Figure(ms) : "-";
}

nlohmann::ordered_json TimingsToJson(const v1::PhaseTimings& timings) {
  return {
      {"bootstrap_ms", timings.bootstrap_ms()},
      {"split_ms", timings.split_ms()},
      {"validate_ms", timings.validate_ms()},
      {"groups_ready_ms", timings.groups_ready_ms()},
      {"plan_received_unix_ms", timings.plan_received_unix_ms()},
      {"world_connected_unix_ms", timings.world_connected_unix_ms()},
      {"groups_ready_unix_ms", timings.groups_ready_unix_ms()},
  };
}

// Seconds with one decimal and `unit` ("12.0s", "12.0 s").
std::string Seconds(double seconds, absl::string_view unit) {
  return absl::StrFormat("%.1f%s", seconds, unit);
}

bool IsSet(const google::protobuf::Timestamp& time) {
  return time.seconds() != 0 || time.nanos() != 0;
}

// How long the member has been in its phase as of `now`; "-" when the daemon did not say. A
// daemon clock ahead of this one reads as 0.
std::string InPhase(const v1::MemberStatus& member, absl::Time now) {
  if (!IsSet(member.phase_since())) return "-";
  const absl::Time since = absl::FromUnixSeconds(member.phase_since().seconds()) +
                           absl::Nanoseconds(member.phase_since().nanos());
  return Seconds(absl::ToDoubleSeconds(std::max(now - since, absl::ZeroDuration())), "s");
}

// The workload's phase, "-" until it reported.
std::string WorkloadPhase(const v1::MemberStatus& member) {
  if (!member.has_workload() || member.workload().phase() == v1::PHASE_UNSPECIFIED) return "-";
  return StatusPrinter::PhaseName(member.workload().phase());
}

std::string OrDash(const std::string& text) { return text.empty() ? "-" : text; }

nlohmann::ordered_json WorkloadToJson(const v1::WorkloadStatus& workload) {
  nlohmann::ordered_json groups = nlohmann::ordered_json::array();
  for (const v1::WorkloadGroup& group : workload.groups()) {
    groups.push_back({
        {"kind", group.kind()},
        {"phase", StatusPrinter::PhaseName(group.phase())},
        {"allreduce_value", group.allreduce_value()},
        {"latency_us", group.latency_us()},
    });
  }
  return {
      {"phase", StatusPrinter::PhaseName(workload.phase())},
      {"phase_since", StatusPrinter::TimeToJson(workload.phase_since())},
      {"reason", workload.reason()},
      {"groups", std::move(groups)},
  };
}

nlohmann::ordered_json MemberToJson(const v1::MemberStatus& member) {
  nlohmann::ordered_json json = {
      {"rank", member.rank()},
      {"member_id", member.member_id()},
      {"pod", member.pod()},
      {"node", member.node()},
      {"host", member.host()},
      {"local_index", member.local_index()},
      {"state", StatusPrinter::MemberStateName(member.state())},
      {"phase", StatusPrinter::PhaseName(member.phase())},
      {"reason", member.reason()},
      {"timings", TimingsToJson(member.timings())},
      {"backends", std::vector<std::string>(member.backends().begin(), member.backends().end())},
      {"last_seen", StatusPrinter::TimeToJson(member.last_seen())},
      {"phase_since", StatusPrinter::TimeToJson(member.phase_since())},
  };
  if (member.has_workload()) json["workload"] = WorkloadToJson(member.workload());
  if (!member.waiting_for_keys().empty()) {
    json["waiting_for_keys"] = std::vector<std::string>(member.waiting_for_keys().begin(),
                                                        member.waiting_for_keys().end());
  }
  return json;
}

nlohmann::ordered_json WaitingToJson(const v1::WaitingRank& waiting) {
  return {
      {"rank", waiting.rank()},
      {"member_id", waiting.member_id()},
      {"pod", waiting.pod()},
      {"node", waiting.node()},
      {"layer", waiting.layer()},
      {"phase", StatusPrinter::PhaseName(waiting.phase())},
      {"seconds", waiting.seconds()},
      {"last_heartbeat_seconds", waiting.last_heartbeat_seconds()},
      {"state", StatusPrinter::MemberStateName(waiting.state())},
      {"detail", waiting.detail()},
  };
}

nlohmann::ordered_json GroupKindToJson(const v1::GroupKindStatus& kind) {
  nlohmann::ordered_json validations = nlohmann::ordered_json::array();
  for (const v1::GroupValidation& validation : kind.validations()) {
    validations.push_back({
        {"group_index", validation.group_index()},
        {"phase", StatusPrinter::PhaseName(validation.phase())},
        {"allreduce_value", validation.allreduce_value()},
        {"latency_us", validation.latency_us()},
        {"bus_bandwidth_gbps", validation.bus_bandwidth_gbps()},
    });
  }
  const std::optional<double> median = StatusPrinter::MedianLatencyUs(kind);
  return {
      {"groups", kind.groups()},
      {"ready", kind.ready()},
      {"failed", kind.failed()},
      {"max_latency_us", kind.max_latency_us()},
      {"median_latency_us", median.has_value() ? nlohmann::ordered_json(*median) : nullptr},
      {"validations", std::move(validations)},
  };
}

// The summary lines above the tables.
std::string Summary(const v1::ClusterStatus& status) {
  std::string out = absl::StrCat(
      "Cluster:      ", status.cluster(), "\nEpoch:        ", status.epoch(),
      "\nState:        ", StatusPrinter::PhaseName(status.state()),
      "\nFingerprint:  ", status.fingerprint(), "\nWorld size:   ", status.world_size(), " (",
      status.registered_members(), " registered)\n");
  if (!status.reason().empty()) absl::StrAppend(&out, "Reason:       ", status.reason(), "\n");
  if (!status.epoch_reason().empty()) {
    absl::StrAppend(&out, "Epoch cause:  ", status.epoch_reason(), "\n");
  }
  if (!status.readiness().empty()) {
    absl::StrAppend(&out, "Readiness:    ", status.readiness(), "\n");
  }
  if (status.held_members() > 0) {
    absl::StrAppend(&out, "Held:         ", status.held_members(),
                    " members past their lease, none declared lost: no member heard since\n");
  }
  if (status.workload_state() != v1::PHASE_UNSPECIFIED) {
    absl::StrAppend(&out, "Workload:     ", StatusPrinter::PhaseName(status.workload_state()),
                    "\n");
  }
  return out;
}

// One WaitingLine() per rank the epoch waits for, up to the limit, then how many more; empty
// when it waits for none.
std::string WaitingLines(const v1::ClusterStatus& status) {
  if (status.waiting_on().empty()) return "";
  std::string out = "\n";
  const int shown = std::min(status.waiting_on_size(), StatusPrinter::kMaxWaitingLines);
  for (int i = 0; i < shown; ++i) {
    absl::StrAppend(&out, StatusPrinter::WaitingLine(status.waiting_on(i)), "\n");
  }
  // The daemon lists at most a few; waiting_on_total counts all of them.
  const int64_t total = std::max<int64_t>(status.waiting_on_total(), status.waiting_on_size());
  if (total > shown) absl::StrAppend(&out, "... and ", total - shown, " more\n");
  return out;
}

}  // namespace

std::string StatusPrinter::PhaseName(v1::Phase phase) {
  return WithoutPrefix(v1::Phase_Name(phase), "PHASE_", phase);
}

std::string StatusPrinter::MemberStateName(v1::MemberState state) {
  return WithoutPrefix(v1::MemberState_Name(state), "MEMBER_STATE_", state);
}

nlohmann::ordered_json StatusPrinter::TimeToJson(const google::protobuf::Timestamp& time) {
  if (time.seconds() == 0 && time.nanos() == 0) return nullptr;
  absl::Time t = absl::FromUnixSeconds(time.seconds()) + absl::Nanoseconds(time.nanos());
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

nlohmann::ordered_json StatusPrinter::ToJson(const v1::ClusterStatus& status) {
  nlohmann::ordered_json members = nlohmann::ordered_json::array();
  for (const v1::MemberStatus& member : status.members()) members.push_back(MemberToJson(member));
  nlohmann::ordered_json groups = nlohmann::ordered_json::object();
  for (const v1::GroupKindStatus& kind : status.groups()) {
    groups[kind.kind()] = GroupKindToJson(kind);
  }
  nlohmann::ordered_json waiting_on = nlohmann::ordered_json::array();
  for (const v1::WaitingRank& waiting : status.waiting_on()) {
    waiting_on.push_back(WaitingToJson(waiting));
  }
  nlohmann::ordered_json json = {
      {"cluster", status.cluster()},
      {"epoch", status.epoch()},
      {"state", PhaseName(status.state())},
      {"fingerprint", status.fingerprint()},
      {"reason", status.reason()},
      {"world_size", status.world_size()},
      {"registered_members", status.registered_members()},
      {"lost_members", status.lost_members()},
      {"excluded_members", status.excluded_members()},
      {"held_members", status.held_members()},
      {"epoch_reason", status.epoch_reason()},
      {"readiness", status.readiness()},
  };
  if (status.workload_state() != v1::PHASE_UNSPECIFIED) {
    json["workload_state"] = PhaseName(status.workload_state());
  }
  json["waiting_on"] = std::move(waiting_on);
  json["waiting_on_total"] = status.waiting_on_total();
  json["timings"] = {
      {"detect_ms", status.timings().detect_ms()},
      {"plan_ms", status.timings().plan_ms()},
      {"deliver_ms", status.timings().deliver_ms()},
      {"bootstrap_ms", status.timings().bootstrap_ms()},
      {"split_ms", status.timings().split_ms()},
      {"validate_ms", status.timings().validate_ms()},
      {"ready_ms", status.timings().ready_ms()},
  };
  json["members"] = std::move(members);
  json["groups"] = std::move(groups);
  return json;
}

std::optional<double> StatusPrinter::MedianLatencyUs(const v1::GroupKindStatus& kind) {
  if (kind.validations().empty()) return std::nullopt;
  std::vector<double> latencies;
  latencies.reserve(static_cast<size_t>(kind.validations_size()));
  for (const v1::GroupValidation& validation : kind.validations()) {
    latencies.push_back(validation.latency_us());
  }
  std::sort(latencies.begin(), latencies.end());
  const size_t middle = latencies.size() / 2;
  if (latencies.size() % 2 == 1) return latencies[middle];
  return (latencies[middle - 1] + latencies[middle]) / 2;
}

std::string StatusPrinter::Table(const v1::ClusterStatus& status, absl::Time now) {
  std::string out = absl::StrCat(Summary(status), WaitingLines(status), "\nMembers:\n");
  if (status.members().empty()) {
    absl::StrAppend(&out, "  (none registered)\n");
  } else {
    TablePrinter members({"RANK", "MEMBER", "POD", "NODE", "HOST", "STATE", "PHASE", "IN_PHASE",
                          "WORKLOAD", "READY_MS", "REASON"});
    for (const v1::MemberStatus& member : status.members()) {
      members.AddRow({Rank(member), member.member_id(), member.pod(), member.node(), member.host(),
                      MemberStateName(member.state()), PhaseName(member.phase()),
                      InPhase(member, now), WorkloadPhase(member), ReadyMs(member),
                      member.reason()});
    }
    absl::StrAppend(&out, members.Render("  "));
  }

  absl::StrAppend(&out, "\nGroup kinds:\n");
  if (status.groups().empty()) {
    absl::StrAppend(&out, "  (none)\n");
  } else {
    TablePrinter groups(
        {"KIND", "GROUPS", "READY", "FAILED", "MAX_LATENCY_US", "MEDIAN_LATENCY_US"});
    for (const v1::GroupKindStatus& kind : status.groups()) {
      groups.AddRow({kind.kind(), absl::StrCat(kind.groups()), absl::StrCat(kind.ready()),
                     absl::StrCat(kind.failed()), MaxLatency(kind), Figure(MedianLatencyUs(kind))});
    }
    absl::StrAppend(&out, groups.Render("  "));
  }
  return out;
}

std::string StatusPrinter::WaitingLine(const v1::WaitingRank& waiting) {
  std::string line = absl::StrCat("waiting for rank ", waiting.rank(), " (pod ",
                                  OrDash(waiting.pod()), ", node ", OrDash(waiting.node()), "): ");
  if (waiting.layer() == "workload") absl::StrAppend(&line, "workload ");
  absl::StrAppend(&line, PhaseName(waiting.phase()));
  if (!waiting.detail().empty()) absl::StrAppend(&line, " (", waiting.detail(), ")");
  absl::StrAppend(&line, " for ", Seconds(waiting.seconds(), " s"), ", last heartbeat ",
                  Seconds(waiting.last_heartbeat_seconds(), " s"), " ago");
  if (waiting.state() == v1::MEMBER_STATE_LOST) {
    absl::StrAppend(&line, ", member ", MemberStateName(waiting.state()));
  }
  return line;
}

}  // namespace splitd::cli
