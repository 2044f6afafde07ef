#include "client/cluster_printer.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/status_printer.h"
#include "client/table_printer.h"
#include "common/topology_document.h"

namespace splitd::cli {
namespace {

constexpr size_t kShortFingerprint = 12;

bool IsSet(const google::protobuf::Timestamp& time) {
  return time.seconds() != 0 || time.nanos() != 0;
}

absl::Time ToTime(const google::protobuf::Timestamp& time) {
  return absl::FromUnixSeconds(time.seconds()) + absl::Nanoseconds(time.nanos());
}

std::string AgeSince(const google::protobuf::Timestamp& time, absl::Time now) {
  return IsSet(time) ? ClusterPrinter::Age(now - ToTime(time)) : "-";
}

std::string Dims(const google::protobuf::RepeatedPtrField<v1::Dim>& dims) {
  if (dims.empty()) return "-";
  return absl::StrJoin(dims, " ", [](std::string* out, const v1::Dim& dim) {
    absl::StrAppend(out, dim.name(), "=", dim.size());
  });
}

std::string Or(const std::string& text, absl::string_view fallback) {
  return text.empty() ? std::string(fallback) : text;
}

// a * b for sizes that come from a daemon: negative becomes 0, overflow saturates.
int64_t Times(int64_t a, int64_t b) {
  if (a <= 0 || b <= 0) return 0;
  if (a > std::numeric_limits<int64_t>::max() / b) return std::numeric_limits<int64_t>::max();
  return a * b;
}

// Product of the sizes of `names` among `dims`; 0 when a name is unknown (the daemon refuses
// such topologies, so this only shows up against a daemon of another version).
int64_t GroupSize(const google::protobuf::RepeatedPtrField<std::string>& names,
                  const google::protobuf::RepeatedPtrField<v1::Dim>& dims) {
  int64_t size = 1;
  for (const std::string& name : names) {
    const v1::Dim* found = nullptr;
    for (const v1::Dim& dim : dims) {
      if (dim.name() == name) found = &dim;
    }
    if (found == nullptr || found->size() < 1) return 0;
    size = Times(size, found->size());
  }
  return size;
}

// One row of the group kinds table; GROUPS and SIZE follow from the topology alone.
std::vector<std::string> GroupRow(const v1::GroupSpec& group, const v1::Topology& topology,
                                  int64_t world_size) {
  const std::string backend = Or(group.backend(), Or(topology.backend(), "cpu:gloo"));
  const std::string local = Or(group.local(), "-");
  if (!group.split_ranks().empty()) {
    size_t size = group.split_ranks(0).ranks_size();
    for (const v1::RankList& list : group.split_ranks()) {
      if (static_cast<size_t>(list.ranks_size()) != size) size = 0;
    }
    return {group.name(),
            "explicit",
            backend,
            local,
            absl::StrCat(group.split_ranks_size()),
            size == 0 ? "mixed" : absl::StrCat(size)};
  }
  const google::protobuf::RepeatedPtrField<v1::Dim>* dims = &topology.dims();
  for (const v1::Mesh& mesh : topology.meshes()) {
    if (!group.mesh().empty() && mesh.name() == group.mesh()) dims = &mesh.dims();
  }
  std::string generator = absl::StrJoin(group.dims(), ",");
  if (!group.mesh().empty()) absl::StrAppend(&generator, " (", group.mesh(), ")");
  int64_t size = GroupSize(group.dims(), *dims);
  if (size == 0 || world_size <= 0) return {group.name(), generator, backend, local, "?", "?"};
  return {group.name(),      generator, backend, local, absl::StrCat(world_size / size),
          absl::StrCat(size)};
}

std::string Nodes(const v1::Topology& topology, int64_t world_size) {
  const v1::Nodes& nodes = topology.nodes();
  if (nodes.gpus_per_node() <= 0) return "-";
  int64_t count = nodes.count() > 0 ? nodes.count() : world_size / nodes.gpus_per_node();
  return absl::StrCat(nodes.gpus_per_node(), " GPUs per node, ", count, " nodes");
}

std::string Validation(const v1::Topology& topology) {
  const v1::Validation& validation = topology.validation();
  std::string text = absl::StrCat(
      "all-reduce of ",
      validation.allreduce_elements() > 0 ? validation.allreduce_elements() : 1024, " elements");
  if (validation.bandwidth_bytes() > 0) {
    absl::StrAppend(&text, ", bandwidth run of ", validation.bandwidth_bytes(), " bytes");
  }
  return text;
}

// "workload" or "agent" (the default), and whether agents check the network first (unset
// means they do).
std::string Readiness(const v1::Topology& topology) {
  std::string text = Or(topology.readiness(), "agent");
  if (topology.has_preflight() && !topology.preflight()) absl::StrAppend(&text, ", no pre-flight");
  return text;
}

// The phase deadlines that are set ("bootstrap 1m, split 30s"), or "none".
std::string Deadlines(const v1::Topology& topology) {
  const v1::Deadlines& deadlines = topology.deadlines();
  const std::pair<const char*, int64_t> all[] = {{"bootstrap", deadlines.bootstrap_ms()},
                                                 {"split", deadlines.split_ms()},
                                                 {"validate", deadlines.validate_ms()},
                                                 {"workload", deadlines.workload_ms()}};
  std::vector<std::string> set;
  for (const auto& [name, ms] : all) {
    if (ms <= 0) continue;
    set.push_back(absl::StrCat(name, " ", absl::FormatDuration(absl::Milliseconds(ms))));
  }
  return set.empty() ? "none" : absl::StrJoin(set, ", ");
}

std::string Time(const google::protobuf::Timestamp& time, absl::Time now) {
  if (!IsSet(time)) return "-";
  return absl::StrCat(StatusPrinter::TimeToJson(time).get<std::string>(), " (",
                      ClusterPrinter::Age(now - ToTime(time)), " ago)");
}

}  // namespace

nlohmann::ordered_json ClusterPrinter::ToJson(const v1::Cluster& cluster) {
  return {
      {"name", cluster.name()},
      {"epoch", cluster.epoch()},
      {"state", StatusPrinter::PhaseName(cluster.state())},
      {"fingerprint", cluster.fingerprint()},
      {"world_size", cluster.world_size()},
      {"group_kinds", cluster.group_kinds()},
      {"create_time", StatusPrinter::TimeToJson(cluster.create_time())},
      {"update_time", StatusPrinter::TimeToJson(cluster.update_time())},
      {"topology", TopologyDocument::ToJsonValue(cluster.topology())},
      {"plan_topology", TopologyDocument::ToJsonValue(cluster.plan_topology())},
      {"join_token_set", cluster.join_token_set()},
  };
}

std::string ClusterPrinter::ApplyResult(const v1::ApplyTopologyResponse& response) {
  const v1::Cluster& cluster = response.cluster();
  const char* verb = response.created()   ? "created"
                     : response.changed() ? "configured"
                                          : "unchanged";
  std::string details = absl::StrCat("epoch ", cluster.epoch());
  if (response.changed() || response.created()) {
    absl::StrAppend(&details, ", fingerprint ", cluster.fingerprint().substr(0, kShortFingerprint));
  }
  return absl::StrCat("cluster/", cluster.name(), " ", verb, " (", details, ")\n");
}

std::string ClusterPrinter::Table(const google::protobuf::RepeatedPtrField<v1::Cluster>& clusters,
                                  absl::Time now) {
  TablePrinter table({"NAME", "WORLD", "KINDS", "EPOCH", "STATE", "FINGERPRINT", "AGE"});
  for (const v1::Cluster& cluster : clusters) {
    table.AddRow({cluster.name(), absl::StrCat(cluster.world_size()),
                  absl::StrCat(cluster.group_kinds()), absl::StrCat(cluster.epoch()),
                  StatusPrinter::PhaseName(cluster.state()),
                  Or(cluster.fingerprint().substr(0, kShortFingerprint), "-"),
                  AgeSince(cluster.create_time(), now)});
  }
  return table.Render();
}

std::string ClusterPrinter::Describe(const v1::Cluster& cluster, absl::Time now) {
  const v1::Topology& topology = cluster.topology();
  int64_t world_size = cluster.world_size();
  if (world_size <= 0) {
    world_size = 1;
    for (const v1::Dim& dim : topology.dims()) world_size = Times(world_size, dim.size());
  }
  std::string out = absl::StrCat(
      "Name:         ", cluster.name(), "\nEpoch:        ", cluster.epoch(),
      "\nState:        ", StatusPrinter::PhaseName(cluster.state()), "\nWorld size:   ", world_size,
      "\nFingerprint:  ", Or(cluster.fingerprint(), "-"),
      "\nMethod:       ", Or(topology.method(), "split"),
      "\nBackend:      ", Or(topology.backend(), "cpu:gloo"),
      "\nDims:         ", Dims(topology.dims()), "\n");
  if (!topology.meshes().empty()) {
    absl::StrAppend(&out, "Meshes:       ",
                    absl::StrJoin(topology.meshes(), "; ",
                                  [](std::string* line, const v1::Mesh& mesh) {
                                    absl::StrAppend(line, mesh.name(), ": ", Dims(mesh.dims()));
                                  }),
                    "\n");
  }
  absl::StrAppend(&out, "Nodes:        ", Nodes(topology, world_size),
                  "\nValidation:   ", Validation(topology), "\nReadiness:    ", Readiness(topology),
                  "\nDeadlines:    ", Deadlines(topology),
                  "\nJoin token:   ", cluster.join_token_set() ? "required" : "none",
                  "\nCreated:      ", Time(cluster.create_time(), now),
                  "\nUpdated:      ", Time(cluster.update_time(), now), "\n");

  TablePrinter kinds({"KIND", "DIMS/EXPLICIT", "BACKEND", "LOCAL", "GROUPS", "SIZE"});
  if (topology.groups().empty()) {
    // Not normalized (an older daemon): one kind per dim, as the daemon would form.
    for (const v1::Dim& dim : topology.dims()) {
      v1::GroupSpec group;
      group.set_name(dim.name());
      group.add_dims(dim.name());
      kinds.AddRow(GroupRow(group, topology, world_size));
    }
  }
  for (const v1::GroupSpec& group : topology.groups()) {
    kinds.AddRow(GroupRow(group, topology, world_size));
  }
  absl::StrAppend(&out, "\nGroup kinds:\n", kinds.Render("  "), "\nTopology:\n");
  for (absl::string_view line :
       absl::StrSplit(TopologyDocument::ToYaml(topology), '\n', absl::SkipEmpty())) {
    absl::StrAppend(&out, "  ", line, "\n");
  }
  return out;
}

std::string ClusterPrinter::Age(absl::Duration age) {
  if (age < absl::ZeroDuration()) age = absl::ZeroDuration();
  if (age < absl::Minutes(2)) return absl::StrCat(absl::ToInt64Seconds(age), "s");
  if (age < absl::Hours(2)) return absl::StrCat(absl::ToInt64Minutes(age), "m");
  if (age < absl::Hours(48)) return absl::StrCat(absl::ToInt64Hours(age), "h");
  return absl::StrCat(absl::ToInt64Hours(age) / 24, "d");
}

}  // namespace splitd::cli
