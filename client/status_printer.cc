#include "client/status_printer.h"

#include <algorithm>
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
  for (const v1::MemberStatus& member : status.members()) {
    members.push_back({
        {"rank", member.rank()},
        {"member_id", member.member_id()},
        {"pod", member.pod()},
        {"node", member.node()},
        {"host", member.host()},
        {"local_index", member.local_index()},
        {"state", MemberStateName(member.state())},
        {"phase", PhaseName(member.phase())},
        {"reason", member.reason()},
        {"timings", TimingsToJson(member.timings())},
        {"backends", std::vector<std::string>(member.backends().begin(),
                                              member.backends().end())},
        {"last_seen", TimeToJson(member.last_seen())},
    });
  }
  nlohmann::ordered_json groups = nlohmann::ordered_json::object();
  for (const v1::GroupKindStatus& kind : status.groups()) {
    nlohmann::ordered_json validations = nlohmann::ordered_json::array();
    for (const v1::GroupValidation& validation : kind.validations()) {
      validations.push_back({
          {"group_index", validation.group_index()},
          {"phase", PhaseName(validation.phase())},
          {"allreduce_value", validation.allreduce_value()},
          {"latency_us", validation.latency_us()},
          {"bus_bandwidth_gbps", validation.bus_bandwidth_gbps()},
      });
    }
    const std::optional<double> median = MedianLatencyUs(kind);
    groups[kind.kind()] = {
        {"groups", kind.groups()},
        {"ready", kind.ready()},
        {"failed", kind.failed()},
        {"max_latency_us", kind.max_latency_us()},
        {"median_latency_us", median.has_value() ? nlohmann::ordered_json(*median) : nullptr},
        {"validations", std::move(validations)},
    };
  }
  return {
      {"cluster", status.cluster()},
      {"epoch", status.epoch()},
      {"state", PhaseName(status.state())},
      {"fingerprint", status.fingerprint()},
      {"reason", status.reason()},
      {"world_size", status.world_size()},
      {"registered_members", status.registered_members()},
      {"lost_members", status.lost_members()},
      {"excluded_members", status.excluded_members()},
      {"epoch_reason", status.epoch_reason()},
      {"timings",
       {
           {"detect_ms", status.timings().detect_ms()},
           {"plan_ms", status.timings().plan_ms()},
           {"deliver_ms", status.timings().deliver_ms()},
           {"bootstrap_ms", status.timings().bootstrap_ms()},
           {"split_ms", status.timings().split_ms()},
           {"validate_ms", status.timings().validate_ms()},
           {"ready_ms", status.timings().ready_ms()},
       }},
      {"members", std::move(members)},
      {"groups", std::move(groups)},
  };
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

std::string StatusPrinter::Table(const v1::ClusterStatus& status) {
  std::string out = absl::StrCat(
      "Cluster:      ", status.cluster(), "\nEpoch:        ", status.epoch(),
      "\nState:        ", PhaseName(status.state()), "\nFingerprint:  ", status.fingerprint(),
      "\nWorld size:   ", status.world_size(), " (", status.registered_members(), " registered)\n");
  if (!status.reason().empty()) absl::StrAppend(&out, "Reason:       ", status.reason(), "\n");
  if (!status.epoch_reason().empty()) {
    absl::StrAppend(&out, "Epoch cause:  ", status.epoch_reason(), "\n");
  }

  absl::StrAppend(&out, "\nMembers:\n");
  if (status.members().empty()) {
    absl::StrAppend(&out, "  (none registered)\n");
  } else {
    TablePrinter members(
        {"RANK", "MEMBER", "POD", "NODE", "HOST", "STATE", "PHASE", "READY_MS", "REASON"});
    for (const v1::MemberStatus& member : status.members()) {
      members.AddRow({Rank(member), member.member_id(), member.pod(), member.node(), member.host(),
                      MemberStateName(member.state()), PhaseName(member.phase()),
                      ReadyMs(member), member.reason()});
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
                     absl::StrCat(kind.failed()), MaxLatency(kind),
                     Figure(MedianLatencyUs(kind))});
    }
    absl::StrAppend(&out, groups.Render("  "));
  }
  return out;
}

}  // namespace splitd::cli
