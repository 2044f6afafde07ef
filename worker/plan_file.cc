#include "worker/plan_file.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/posix_file.h"
#include "nlohmann/json.hpp"

namespace splitd::worker {

std::string PlanFile::ToJson(bool with_layout) const {
  nlohmann::ordered_json doc;
  doc["cluster"] = cluster;
  doc["rank"] = rank;
  doc["world_size"] = world_size;
  doc["epoch"] = epoch;
  doc["fingerprint"] = fingerprint;
  doc["method"] = method;
  doc["state"] = state;
  if (!error.empty()) doc["error"] = error;
  nlohmann::ordered_json group_map = nlohmann::ordered_json::object();
  for (const Group& group : groups) {
    nlohmann::ordered_json entry;
    entry["ranks"] = group.ranks;
    entry["local_rank"] = group.local_rank;
    entry["group_index"] = group.group_index;
    entry["backend"] = group.backend;
    group_map[group.kind] = std::move(entry);
  }
  doc["groups"] = std::move(group_map);
  doc["timings"] = {{"bootstrap_ms", bootstrap_ms},
                    {"split_ms", split_ms},
                    {"validate_ms", validate_ms},
                    {"groups_ready_ms", groups_ready_ms}};
  if (!socket.empty()) doc["socket"] = socket;
  if (!readiness.empty()) {
    doc["readiness"] = readiness;
    doc["preflight"] = preflight;
  }
  if (with_layout) {
    nlohmann::ordered_json kinds = nlohmann::ordered_json::array();
    for (const KindLayout& kind : layout) {
      kinds.push_back({{"kind", kind.kind}, {"backend", kind.backend}, {"groups", kind.groups}});
    }
    doc["layout"] = std::move(kinds);
  }
  // Replace rather than throw on text that is not UTF-8 (an error message, say).
  return doc.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

absl::Status PlanFile::Write(const std::string& path) const {
  // A fresh temporary name per write; 0644 because the workload may run as another user.
  return WriteFileAtomically(path, ToJson());
}

}  // namespace splitd::worker
