#include "client/status_printer.h"

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

std::string Latency(const v1::GroupKindStatus& kind) {
  if (kind.validations().empty()) return "-";
  return absl::StrFormat("%.1f", kind.max_latency_us());
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
        {"node", member.node()},
        {"pod", member.pod()},
        {"host", member.host()},
        {"local_index", member.local_index()},
        {"state", MemberStateName(member.state())},
        {"phase", PhaseName(member.phase())},
        {"reason", member.reason()},
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
    groups[kind.kind()] = {
        {"groups", kind.groups()},
        {"ready", kind.ready()},
        {"failed", kind.failed()},
        {"max_latency_us", kind.max_latency_us()},
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
      {"members", std::move(members)},
      {"groups", std::move(groups)},
  };
}

std::string StatusPrinter::Table(const v1::ClusterStatus& status) {
  std::string out = absl::StrCat(
      "Cluster:      ", status.cluster(), "\nEpoch:        ", status.epoch(),
      "\nState:        ", PhaseName(status.state()), "\nFingerprint:  ", status.fingerprint(),
      "\nWorld size:   ", status.world_size(), " (", status.registered_members(), " registered)\n");
  if (!status.reason().empty()) absl::StrAppend(&out, "Reason:       ", status.reason(), "\n");

  absl::StrAppend(&out, "\nMembers:\n");
  bool any_reason = false;
  for (const v1::MemberStatus& member : status.members()) {
    any_reason = any_reason || !member.reason().empty();
  }
  if (status.members().empty()) {
    absl::StrAppend(&out, "  (none registered)\n");
  } else {
    std::vector<std::string> headers = {"RANK", "MEMBER", "NODE", "POD", "STATE", "PHASE"};
    if (any_reason) headers.push_back("REASON");
    TablePrinter members(std::move(headers));
    for (const v1::MemberStatus& member : status.members()) {
      members.AddRow({member.rank() < 0 ? "-" : absl::StrCat(member.rank()), member.member_id(),
                      member.node(), member.pod(), MemberStateName(member.state()),
                      PhaseName(member.phase()), member.reason()});
    }
    absl::StrAppend(&out, members.Render("  "));
  }

  absl::StrAppend(&out, "\nGroup kinds:\n");
  if (status.groups().empty()) {
    absl::StrAppend(&out, "  (none)\n");
  } else {
    TablePrinter groups({"KIND", "GROUPS", "READY", "FAILED", "MAX_LATENCY_US"});
    for (const v1::GroupKindStatus& kind : status.groups()) {
      groups.AddRow({kind.kind(), absl::StrCat(kind.groups()), absl::StrCat(kind.ready()),
                     absl::StrCat(kind.failed()), Latency(kind)});
    }
    absl::StrAppend(&out, groups.Render("  "));
  }
  return out;
}

}  // namespace splitd::cli
