#include "client/cluster_printer.h"

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/topology_document.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace splitd::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kCreated = 1714557600;  // 2024-05-01T10:00:00Z

// The example of docs/plan-format.md as the daemon returns it (normalized).
v1::Cluster ExampleCluster() {
  absl::StatusOr<v1::Topology> topology = TopologyDocument::Parse(R"yaml(
cluster: llama-serve
dims: [{name: tp, size: 2}, {name: pp, size: 2}, {name: dp, size: 2}]
nodes: {gpus_per_node: 4}
groups:
  - {name: tp, dims: [tp], backend: "cpu:gloo,cuda:nccl", local: node}
  - {name: ep, dims: [tp, dp], backend: "cpu:gloo"}
  - {name: custom, split_ranks: [[0, 3], [1, 2], [4, 7], [5, 6]], backend: "cpu:gloo"}
method: split
backend: "cpu:gloo"
validation: {allreduce_elements: 1024}
world_size: 8
)yaml");
  EXPECT_TRUE(topology.ok()) << topology.status();
  v1::Cluster cluster;
  cluster.set_name("llama-serve");
  *cluster.mutable_topology() = *topology;
  cluster.set_epoch(3);
  cluster.set_fingerprint("3f2a9c0d1e2b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f708192a3b4c5d6e7f");
  cluster.set_state(v1::PHASE_READY);
  cluster.set_world_size(8);
  cluster.set_group_kinds(3);
  cluster.mutable_create_time()->set_seconds(kCreated);
  cluster.mutable_update_time()->set_seconds(kCreated + 60);
  return cluster;
}

absl::Time Created() { return absl::FromUnixSeconds(kCreated); }

TEST(ClusterPrinterTest, ApplyResultSaysWhatHappened) {
  v1::ApplyTopologyResponse response;
  *response.mutable_cluster() = ExampleCluster();
  response.set_created(true);
  response.set_changed(true);
  EXPECT_EQ(ClusterPrinter::ApplyResult(response),
            "cluster/llama-serve created (epoch 3, fingerprint 3f2a9c0d1e2b)\n");
  response.set_created(false);
  EXPECT_EQ(ClusterPrinter::ApplyResult(response),
            "cluster/llama-serve configured (epoch 3, fingerprint 3f2a9c0d1e2b)\n");
  response.set_changed(false);
  EXPECT_EQ(ClusterPrinter::ApplyResult(response), "cluster/llama-serve unchanged (epoch 3)\n");
}

TEST(ClusterPrinterTest, TableAlignsClusters) {
  google::protobuf::RepeatedPtrField<v1::Cluster> clusters;
  *clusters.Add() = ExampleCluster();
  v1::Cluster* other = clusters.Add();
  other->set_name("x");
  other->set_world_size(1048576);
  other->set_group_kinds(12);
  other->set_epoch(10);
  other->set_state(v1::PHASE_BOOTSTRAPPING);
  EXPECT_EQ(ClusterPrinter::Table(clusters, Created() + absl::Hours(5)),
            "NAME         WORLD    KINDS  EPOCH  STATE          FINGERPRINT   AGE\n"
            "llama-serve  8        3      3      READY          3f2a9c0d1e2b  5h\n"
            "x            1048576  12     10     BOOTSTRAPPING  -             -\n");
}

TEST(ClusterPrinterTest, AgesLikeKubectl) {
  EXPECT_EQ(ClusterPrinter::Age(absl::Seconds(-3)), "0s");
  EXPECT_EQ(ClusterPrinter::Age(absl::Seconds(45)), "45s");
  EXPECT_EQ(ClusterPrinter::Age(absl::Seconds(119)), "119s");
  EXPECT_EQ(ClusterPrinter::Age(absl::Minutes(12)), "12m");
  EXPECT_EQ(ClusterPrinter::Age(absl::Hours(5)), "5h");
  EXPECT_EQ(ClusterPrinter::Age(absl::Hours(24 * 3 + 5)), "3d");
}

TEST(ClusterPrinterTest, DescribeSummarizesTopologyAndGroupKinds) {
  const std::string text = ClusterPrinter::Describe(ExampleCluster(), Created() + absl::Hours(3));
  EXPECT_THAT(text, HasSubstr("Name:         llama-serve\n"
                              "Epoch:        3\n"
                              "State:        READY\n"
                              "World size:   8\n"
                              "Fingerprint:  3f2a9c0d1e2b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f708192a"
                              "3b4c5d6e7f\n"
                              "Method:       split\n"
                              "Backend:      cpu:gloo\n"
                              "Dims:         tp=2 pp=2 dp=2\n"
                              "Nodes:        4 GPUs per node, 2 nodes\n"
                              "Validation:   all-reduce of 1024 elements\n"
                              "Readiness:    agent\n"
                              "Deadlines:    none\n"
                              "Join token:   none\n"
                              "Created:      2024-05-01T10:00:00Z (3h ago)\n"
                              "Updated:      2024-05-01T10:01:00Z (2h ago)\n"));
  EXPECT_THAT(text, HasSubstr("Group kinds:\n"
                              "  KIND    DIMS/EXPLICIT  BACKEND             LOCAL  GROUPS  SIZE\n"
                              "  tp      tp             cpu:gloo,cuda:nccl  node   4       2\n"
                              "  ep      tp,dp          cpu:gloo            -      2       4\n"
                              "  custom  explicit       cpu:gloo            -      4       2\n"));
  EXPECT_THAT(text, HasSubstr("Topology:\n  cluster: llama-serve\n  dims:\n"
                              "    - {name: tp, size: 2}\n"));
}

TEST(ClusterPrinterTest, DescribeShowsReadinessPreflightAndDeadlines) {
  v1::Cluster cluster = ExampleCluster();
  v1::Topology* topology = cluster.mutable_topology();
  topology->set_readiness("workload");
  topology->set_preflight(false);
  topology->mutable_deadlines()->set_bootstrap_ms(120000);
  topology->mutable_deadlines()->set_workload_ms(1500);
  const std::string text = ClusterPrinter::Describe(cluster, Created());
  EXPECT_THAT(text, HasSubstr("Readiness:    workload, no pre-flight\n"
                              "Deadlines:    bootstrap 2m, workload 1.5s\n"));
  // Pre-flight stated as on is the default, not worth a word.
  topology->set_preflight(true);
  topology->mutable_deadlines()->set_split_ms(30000);
  EXPECT_THAT(ClusterPrinter::Describe(cluster, Created()),
              HasSubstr("Readiness:    workload\n"
                        "Deadlines:    bootstrap 2m, split 30s, workload 1.5s\n"));
}

TEST(ClusterPrinterTest, JsonCarriesTheTopologyDocument) {
  nlohmann::ordered_json json = ClusterPrinter::ToJson(ExampleCluster());
  std::vector<std::string> keys;
  for (const auto& item : json.items()) keys.push_back(item.key());
  EXPECT_THAT(keys, ElementsAre("name", "epoch", "state", "fingerprint", "world_size",
                                "group_kinds", "create_time", "update_time", "topology",
                                "plan_topology", "join_token_set"));
  EXPECT_EQ(json["join_token_set"], false);
  EXPECT_EQ(json["state"], "READY");
  EXPECT_EQ(json["create_time"], "2024-05-01T10:00:00Z");
  EXPECT_EQ(json["topology"]["dims"][0]["size"], 2);
  EXPECT_EQ(json["topology"]["groups"][2]["split_ranks"][1],
            nlohmann::ordered_json::parse("[1, 2]"));
}

}  // namespace
}  // namespace splitd::cli
