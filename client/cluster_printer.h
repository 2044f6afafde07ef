#ifndef SPLITD_CLIENT_CLUSTER_PRINTER_H_
#define SPLITD_CLIENT_CLUSTER_PRINTER_H_

#include <string>

#include "absl/time/time.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "nlohmann/json.hpp"
#include "splitd/v1/control_service.pb.h"
#include "splitd/v1/status.pb.h"

namespace splitd::cli {

// Renders clusters for `splitctl apply`, `get clusters` and `describe cluster`. `now` is
// passed in so that ages are testable. Stateless.
class ClusterPrinter {
 public:
  // {"name", "epoch", "state", "fingerprint", "world_size", "group_kinds", "create_time",
  //  "update_time", "topology": the topology document (TopologyDocument::ToJsonValue)}.
  static nlohmann::ordered_json ToJson(const v1::Cluster& cluster);

  // `cluster/NAME created (epoch 1, fingerprint 3f2a9c0d1e2b)`, `... configured (...)` or
  // `... unchanged (epoch N)`, with a newline.
  static std::string ApplyResult(const v1::ApplyTopologyResponse& response);

  // NAME WORLD KINDS EPOCH STATE FINGERPRINT AGE, fingerprints cut to 12 characters.
  static std::string Table(const google::protobuf::RepeatedPtrField<v1::Cluster>& clusters,
                           absl::Time now);

  // Summary lines (readiness with "no pre-flight" when it is off, the phase deadlines that are
  // set), a table of group kinds (KIND DIMS/EXPLICIT BACKEND LOCAL GROUPS SIZE,
  // computed from the normalized topology) and the topology document as YAML.
  static std::string Describe(const v1::Cluster& cluster, absl::Time now);

  // kubectl's short ages: "45s", "12m", "5h", "3d".
  static std::string Age(absl::Duration age);
};

}  // namespace splitd::cli

#endif  // SPLITD_CLIENT_CLUSTER_PRINTER_H_
