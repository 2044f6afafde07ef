#include "client/plan_printer.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/topology_document.h"
#include "nlohmann/json.hpp"

namespace splitd::cli {
namespace {

constexpr char kIndent[] = "  ";
constexpr size_t kShortFingerprint = 12;

// A JSON string literal.
std::string Quoted(const std::string& text) {
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A YAML scalar, quoted only where a plain one would read back as another type.
std::string YamlScalar(const std::string& text) {
  std::string yaml = TopologyDocument::RenderYaml(nlohmann::ordered_json(text));
  if (!yaml.empty() && yaml.back() == '\n') yaml.pop_back();
  return yaml;
}

void AppendRanks(const v1::RankList& group, std::string* out) {
  absl::StrAppend(out, "[", absl::StrJoin(group.ranks(), ", "), "]");
}

// `[[0, 1], [2, 3]]`, one kind's groups on one line.
void AppendGroups(const v1::GroupKindPlan& kind, std::string* out) {
  out->push_back('[');
  for (int i = 0; i < kind.split_ranks_size(); ++i) {
    if (i > 0) out->append(", ");
    AppendRanks(kind.split_ranks(i), out);
  }
  out->push_back(']');
}

std::string KindHeader(const v1::GroupKindPlan& kind) {
  std::string header = absl::StrCat("KIND ", kind.name(), "  backend ", kind.backend());
  if (kind.group_size() > 0) {
    absl::StrAppend(&header, "  groups ", kind.group_count(), " x ", kind.group_size());
  } else {
    absl::StrAppend(&header, "  groups ", kind.group_count(), " (sizes differ)");
  }
  if (kind.dims().empty()) {
    absl::StrAppend(&header, "  explicit");
  } else {
    absl::StrAppend(&header, "  dims ", absl::StrJoin(kind.dims(), ","));
  }
  if (!kind.mesh().empty()) absl::StrAppend(&header, "  mesh ", kind.mesh());
  if (!kind.local().empty()) absl::StrAppend(&header, "  local ", kind.local());
  return header;
}

// Groups as equal-width cells, as many per line as fit in `width`.
void AppendGroupCells(const v1::GroupKindPlan& kind, int width, std::string* out) {
  std::vector<std::string> cells;
  cells.reserve(kind.split_ranks_size());
  size_t cell_width = 0;
  for (const v1::RankList& group : kind.split_ranks()) {
    std::string cell;
    AppendRanks(group, &cell);
    cell_width = std::max(cell_width, cell.size());
    cells.push_back(std::move(cell));
  }
  const size_t usable = std::max<int>(width - static_cast<int>(sizeof(kIndent) - 1), 1);
  const size_t per_line = std::max<size_t>(1, (usable + 2) / (cell_width + 2));
  for (size_t i = 0; i < cells.size(); ++i) {
    const bool line_start = i % per_line == 0;
    const bool line_end = (i + 1) % per_line == 0 || i + 1 == cells.size();
    if (line_start) out->append(kIndent);
    out->append(cells[i]);
    if (line_end) {
      out->push_back('\n');
    } else {
      out->append(cell_width - cells[i].size() + 2, ' ');
    }
  }
}

}  // namespace

std::string PlanPrinter::Json(const v1::Plan& plan) {
  std::string out =
      absl::StrCat("{\n  \"cluster\": ", Quoted(plan.cluster()), ",\n  \"epoch\": ", plan.epoch(),
                   ",\n  \"fingerprint\": ", Quoted(plan.fingerprint()), ",\n  \"groups\": {");
  for (int i = 0; i < plan.groups_size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "\n" : ",\n", "    ", Quoted(plan.groups(i).name()), ": ");
    AppendGroups(plan.groups(i), &out);
  }
  absl::StrAppend(&out, plan.groups().empty() ? "}" : "\n  }", "\n}\n");
  return out;
}

std::string PlanPrinter::Yaml(const v1::Plan& plan) {
  std::string out = absl::StrCat("cluster: ", YamlScalar(plan.cluster()), "\nepoch: ", plan.epoch(),
                                 "\nfingerprint: ", YamlScalar(plan.fingerprint()), "\ngroups:");
  if (plan.groups().empty()) out.append(" {}");
  for (const v1::GroupKindPlan& kind : plan.groups()) {
    absl::StrAppend(&out, "\n  ", YamlScalar(kind.name()), ": ");
    AppendGroups(kind, &out);
  }
  out.push_back('\n');
  return out;
}

std::string PlanPrinter::Table(const v1::Plan& plan, std::optional<int64_t> rank, int width) {
  std::string out = absl::StrCat("cluster ", plan.cluster(), "  epoch ", plan.epoch(), "  world ",
                                 plan.world_size(), "  method ", plan.method(), "  fingerprint ",
                                 plan.fingerprint().substr(0, kShortFingerprint));
  if (rank.has_value()) absl::StrAppend(&out, "  rank ", *rank);
  out.push_back('\n');
  for (const v1::GroupKindPlan& kind : plan.groups()) {
    absl::StrAppend(&out, "\n", KindHeader(kind), "\n");
    if (kind.split_ranks().empty()) {
      absl::StrAppend(&out, kIndent,
                      rank.has_value() ? absl::StrCat("(rank ", *rank, " takes no part)")
                                       : std::string("(no groups)"),
                      "\n");
      continue;
    }
    AppendGroupCells(kind, width, &out);
  }
  return out;
}

}  // namespace splitd::cli
