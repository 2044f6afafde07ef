#ifndef SPLITD_WORKER_PLAN_FILE_H_
#define SPLITD_WORKER_PLAN_FILE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace splitd::worker {

// What sidecar mode hands the workload (docs/architecture.md, "Bootstrap and split"): this rank's
// plan as one JSON document,
//
//   {"cluster": "llama-serve", "rank": 5, "world_size": 8, "epoch": 3,
//    "fingerprint": "72d5...", "method": "split", "state": "READY",
//    "groups": {"tp": {"ranks": [4, 5], "local_rank": 1, "group_index": 2,
//                      "backend": "cpu:gloo"}, ...},
//    "timings": {"bootstrap_ms": 12.5, "split_ms": 3.1, "validate_ms": 0.8,
//                "groups_ready_ms": 16.4}}
//
// plus "error" when state is "FAILED". Kinds this rank takes no part in are omitted from
// "groups". Workloads must check "state" and "epoch" before they use the groups.
// A plain value; Write() replaces the file atomically, so a reader never sees a partial one.
struct PlanFile {
  struct Group {
    std::string kind;
    std::vector<int32_t> ranks;  // global ranks in local-rank order
    int local_rank = 0;
    int64_t group_index = 0;
    std::string backend;  // the kind's backend string, e.g. "cpu:gloo,cuda:nccl"
  };

  std::string cluster;
  int64_t rank = -1;  // -1 for a spare
  int64_t world_size = 0;
  int64_t epoch = 0;
  std::string fingerprint;
  std::string method;
  std::string state;          // "READY", "FAILED" or "SPARE"
  std::string error;          // written only when not empty
  std::vector<Group> groups;  // in kind order
  double bootstrap_ms = 0;
  double split_ms = 0;
  double validate_ms = 0;
  double groups_ready_ms = 0;
  // The agent's workload endpoint (docs/workload-endpoint.md); written only when not empty.
  std::string socket;
  // The topology's readiness and preflight settings; written only when readiness is not empty.
  std::string readiness;
  bool preflight = true;
  // Every group of every kind, for the endpoint's plan document (ToJson(true)).
  struct KindLayout {
    std::string kind;
    std::string backend;
    std::vector<std::vector<int32_t>> groups;
  };
  std::vector<KindLayout> layout;

  // The JSON document, indented, ending in a newline; with `with_layout`, also "layout".
  std::string ToJson(bool with_layout = false) const;

  // Writes ToJson() to `path` atomically: a temporary file in the same directory, fsync,
  // rename over `path`, fsync of the directory. The temporary is removed on any failure.
  // INTERNAL naming the path and the system error when a step fails.
  absl::Status Write(const std::string& path) const;
};

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_PLAN_FILE_H_
