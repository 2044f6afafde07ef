#include "daemon/daemon_metrics.h"

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/version.h"
#include "google/protobuf/descriptor.h"
#include "splitd/v1/status.pb.h"

namespace splitd::daemon {
namespace {

// "READY" for PHASE_READY.
std::string PhaseLabel(v1::Phase phase) {
  absl::string_view name = v1::Phase_Name(phase);
  absl::ConsumePrefix(&name, "PHASE_");
  return std::string(name);
}

std::vector<metrics::LabeledValue> ClusterGauges(const Coordinator& coordinator) {
  const Coordinator::Counts counts = coordinator.CountClustersAndMembers();
  std::vector<metrics::LabeledValue> values;
  const google::protobuf::EnumDescriptor* phases = v1::Phase_descriptor();
  for (int i = 0; i < phases->value_count(); ++i) {
    const auto phase = static_cast<v1::Phase>(phases->value(i)->number());
    if (phase == v1::PHASE_UNSPECIFIED) continue;
    auto it = counts.clusters_by_phase.find(phase);
    values.push_back({{PhaseLabel(phase)},
                      static_cast<double>(it == counts.clusters_by_phase.end() ? 0 : it->second)});
  }
  return values;
}

std::vector<metrics::LabeledValue> MemberGauges(const Coordinator& coordinator) {
  const Coordinator::Counts counts = coordinator.CountClustersAndMembers();
  return {{{"alive"}, static_cast<double>(counts.alive_members)},
          {{"lost"}, static_cast<double>(counts.lost_members)},
          {{"excluded"}, static_cast<double>(counts.excluded_members)}};
}

}  // namespace

void AddDaemonMetrics(metrics::Registry* registry, const Coordinator* coordinator,
                      const RendezvousSpaces* spaces) {
  registry
      ->AddGauge("splitd_build_info", "Always 1; the daemon's release in `version`.", {"version"})
      .WithLabels({kVersion})
      .Set(1);
  registry->AddCallbackGauge("splitd_clusters", "Clusters, by the phase of their current epoch.",
                             {"state"}, [coordinator] { return ClusterGauges(*coordinator); });
  registry->AddCallbackGauge("splitd_members",
                             "Members of every cluster, by liveness (spares count as alive).",
                             {"state"}, [coordinator] { return MemberGauges(*coordinator); });
  registry->AddCallbackGauge("splitd_rendezvous_keys",
                             "Keys held in the rendezvous spaces of every cluster and epoch.", {},
                             [spaces] {
                               return std::vector<metrics::LabeledValue>{
                                   {{}, static_cast<double>(spaces->TotalKeyCount())}};
                             });
}

}  // namespace splitd::daemon
