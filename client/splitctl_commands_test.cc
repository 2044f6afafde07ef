#include "client/splitctl_commands.h"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "splitd/v1/control_service.grpc.pb.h"
#include "tests/testing/local_grpc_server.h"
#include "yaml-cpp/yaml.h"

namespace splitd::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::StartsWith;

constexpr char kFingerprint[] = "3f2a9c0d1e2b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f708192a3b4c5d6e7f";

// A ControlService with canned answers for one cluster, "llama-serve"; it records what it got.
// Stands in for the daemon, which is tested on its own.
class FakeControlService final : public v1::ControlService::Service {
 public:
  grpc::Status ApplyTopology(grpc::ServerContext*, const v1::ApplyTopologyRequest* request,
                             v1::ApplyTopologyResponse* response) override {
    absl::MutexLock lock(&mu_);
    applied_.push_back(request->topology());
    if (request->topology().dims_size() > 0 && request->topology().dims(0).size() == 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "dims[0].size must be >= 1, got 0");
    }
    *response->mutable_cluster() = Cluster();
    response->set_created(true);
    response->set_changed(true);
    return grpc::Status::OK;
  }

  grpc::Status GetCluster(grpc::ServerContext*, const v1::GetClusterRequest* request,
                          v1::GetClusterResponse* response) override {
    if (request->name() != "llama-serve") return NotFound(request->name());
    *response->mutable_cluster() = Cluster();
    return grpc::Status::OK;
  }

  grpc::Status ListClusters(grpc::ServerContext*, const v1::ListClustersRequest*,
                            v1::ListClustersResponse* response) override {
    *response->add_clusters() = Cluster();
    return grpc::Status::OK;
  }

  grpc::Status DeleteCluster(grpc::ServerContext*, const v1::DeleteClusterRequest* request,
                             v1::DeleteClusterResponse* response) override {
    if (request->name() != "llama-serve") return NotFound(request->name());
    response->set_last_epoch(4);
    return grpc::Status::OK;
  }

  grpc::Status GetPlan(grpc::ServerContext*, const v1::GetPlanRequest* request,
                       v1::GetPlanResponse* response) override {
    {
      absl::MutexLock lock(&mu_);
      plan_requests_.push_back(*request);
    }
    if (request->cluster() != "llama-serve") return NotFound(request->cluster());
    v1::Plan* plan = response->mutable_plan();
    plan->set_cluster("llama-serve");
    plan->set_epoch(1);
    plan->set_fingerprint(kFingerprint);
    plan->set_world_size(4);
    plan->set_method("split");
    for (const char* name : {"tp", "dp"}) {
      v1::GroupKindPlan* kind = plan->add_groups();
      kind->set_name(name);
      kind->set_backend("cpu:gloo");
      kind->add_dims(name);
      kind->set_group_count(2);
      kind->set_group_size(2);
      const bool tp = std::string(name) == "tp";
      for (std::vector<int64_t> ranks :
           {std::vector<int64_t>{0, tp ? 1 : 2}, std::vector<int64_t>{tp ? 2 : 1, 3}}) {
        kind->add_split_ranks()->mutable_ranks()->Add(ranks.begin(), ranks.end());
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status GetStatus(grpc::ServerContext* context, const v1::GetStatusRequest* request,
                         v1::GetStatusResponse* response) override {
    if (request->cluster() == "slow") {
      // Answers only after the client gave up, to exercise --timeout.
      while (!context->IsCancelled()) absl::SleepFor(absl::Milliseconds(1));
      return grpc::Status(grpc::StatusCode::CANCELLED, "client gave up");
    }
    if (request->cluster() != "llama-serve") return NotFound(request->cluster());
    v1::ClusterStatus* status = response->mutable_status();
    status->set_cluster("llama-serve");
    status->set_epoch(1);
    status->set_state(v1::PHASE_READY);
    status->set_fingerprint(kFingerprint);
    status->set_world_size(1);
    status->set_registered_members(1);
    status->set_readiness("workload");
    status->set_workload_state(v1::PHASE_READY);
    v1::MemberStatus* member = status->add_members();
    member->set_member_id("m-0");
    member->set_pod("pod-0");
    member->set_node("node-a");
    member->set_state(v1::MEMBER_STATE_ACTIVE);
    member->set_phase(v1::PHASE_READY);
    member->mutable_phase_since()->set_seconds(1714557600);  // 2024-05-01T10:00:00Z
    member->mutable_workload()->set_phase(v1::PHASE_READY);
    v1::GroupKindStatus* kind = status->add_groups();
    kind->set_kind("tp");
    kind->set_groups(1);
    kind->set_ready(1);
    return grpc::Status::OK;
  }

  std::vector<v1::Topology> applied() {
    absl::MutexLock lock(&mu_);
    return applied_;
  }

  std::vector<v1::GetPlanRequest> plan_requests() {
    absl::MutexLock lock(&mu_);
    return plan_requests_;
  }

 private:
  static v1::Cluster Cluster() {
    v1::Cluster cluster;
    cluster.set_name("llama-serve");
    cluster.set_epoch(1);
    cluster.set_fingerprint(kFingerprint);
    cluster.set_state(v1::PHASE_PENDING);
    cluster.set_world_size(4);
    cluster.set_group_kinds(2);
    v1::Topology* topology = cluster.mutable_topology();
    topology->set_cluster("llama-serve");
    for (const char* name : {"tp", "dp"}) {
      v1::Dim* dim = topology->add_dims();
      dim->set_name(name);
      dim->set_size(2);
    }
    return cluster;
  }

  static grpc::Status NotFound(const std::string& name) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("cluster \"", name, "\" not found"));
  }

  absl::Mutex mu_;
  std::vector<v1::Topology> applied_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::GetPlanRequest> plan_requests_ ABSL_GUARDED_BY(mu_);
};

// What one splitctl invocation printed.
struct Result {
  int code;
  std::string out;
  std::string err;
};

class SplitctlCommandsTest : public testing::LocalGrpcServerTest {
 protected:
  std::vector<grpc::Service*> Services() override { return {&service_}; }

  // Runs splitctl against the fake daemon (the default address), with `stdin_text` as stdin.
  Result Run(const std::vector<std::string>& args, const std::string& stdin_text = "") {
    std::istringstream in(stdin_text);
    std::ostringstream out;
    std::ostringstream err;
    int code = RunSplitctl(args, in, out, err, address_);
    return {code, out.str(), err.str()};
  }

  std::string WriteFile(const std::string& name, const std::string& text) {
    const char* dir = std::getenv("TEST_TMPDIR");
    std::string path = absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
    std::ofstream(path) << text;
    return path;
  }

  FakeControlService service_;
};

TEST_F(SplitctlCommandsTest, UnreachableDaemonIsOneErrorLineAndExitOne) {
  Result result = Run({"get", "clusters", "--addr", "127.0.0.1:1"});
  EXPECT_EQ(result.code, kExitError);
  EXPECT_EQ(result.out, "");
  EXPECT_THAT(result.err, StartsWith("error: daemon unreachable at 127.0.0.1:1 (UNAVAILABLE: "));
  EXPECT_THAT(result.err, MatchesRegex("[^\n]*\\)\n"));
}

TEST_F(SplitctlCommandsTest, UsageErrorIsOneLineAndExitTwo) {
  Result result = Run({"get", "clusters", "--bogus"});
  EXPECT_EQ(result.code, kExitUsage);
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(result.err, "error: unknown flag \"--bogus\" (run \"splitctl --help\" for usage)\n");
}

TEST_F(SplitctlCommandsTest, HelpAndVersionGoToStdout) {
  Result help = Run({"--help"});
  EXPECT_EQ(help.code, kExitOk);
  EXPECT_THAT(help.out, StartsWith("splitctl - "));
  EXPECT_EQ(help.err, "");
  Result version = Run({"--version"});
  EXPECT_EQ(version.code, kExitOk);
  EXPECT_EQ(version.out, "splitctl 0.1.0 (API splitd.v1)\n");
}

TEST_F(SplitctlCommandsTest, ApplyReadsAFile) {
  std::string path = WriteFile("topology.yaml",
                               "cluster: llama-serve\ndims: [{name: tp, size: 2}, "
                               "{name: dp, size: 2}]\n");
  Result result = Run({"apply", "-f", path});
  EXPECT_EQ(result.code, kExitOk) << result.err;
  EXPECT_EQ(result.out, "cluster/llama-serve created (epoch 1, fingerprint 3f2a9c0d1e2b)\n");
  EXPECT_EQ(result.err, "");
  ASSERT_EQ(service_.applied().size(), 1u);
  EXPECT_EQ(service_.applied()[0].dims(1).name(), "dp");
}

TEST_F(SplitctlCommandsTest, ApplyReadsStdinAndPrintsJson) {
  Result result = Run({"apply", "-f", "-", "-o", "json"},
                      R"({"cluster": "llama-serve", "dims": [{"name": "tp", "size": 4}]})");
  EXPECT_EQ(result.code, kExitOk) << result.err;
  nlohmann::json json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["name"], "llama-serve");
  EXPECT_EQ(json["epoch"], 1);
  ASSERT_EQ(service_.applied().size(), 1u);
  EXPECT_EQ(service_.applied()[0].dims(0).size(), 4);
}

TEST_F(SplitctlCommandsTest, ApplyReportsParseErrorsWithTheFileName) {
  std::string path = WriteFile("bad.yaml", "cluster: x\ndims: [{name: tp, size: abc}]\n");
  Result result = Run({"apply", "-f", path});
  EXPECT_EQ(result.code, kExitError);
  EXPECT_EQ(result.err,
            absl::StrCat("error: ", path, ": dims[0].size: expected an integer, got \"abc\"\n"));
  EXPECT_TRUE(service_.applied().empty());

  Result missing = Run({"apply", "-f", "/nonexistent/topology.yaml"});
  EXPECT_EQ(missing.code, kExitError);
  EXPECT_EQ(missing.err,
            "error: /nonexistent/topology.yaml: cannot open: No such file or directory\n");

  Result empty = Run({"apply", "-f", "-"}, "");
  EXPECT_EQ(empty.err, "error: <stdin>: topology document is empty\n");
}

TEST_F(SplitctlCommandsTest, ApplyReportsTheDaemonsRefusal) {
  Result result = Run({"apply", "-f", "-"}, "cluster: x\ndims: [{name: tp, size: 0}]\n");
  EXPECT_EQ(result.code, kExitError);
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(result.err, "error: INVALID_ARGUMENT: dims[0].size must be >= 1, got 0\n");
}

TEST_F(SplitctlCommandsTest, GetClustersPrintsTableOrList) {
  Result table = Run({"get", "clusters"});
  EXPECT_EQ(table.code, kExitOk) << table.err;
  EXPECT_THAT(table.out,
              StartsWith("NAME         WORLD  KINDS  EPOCH  STATE    FINGERPRINT   AGE\n"
                         "llama-serve  4      2      1      PENDING  3f2a9c0d1e2b  -\n"));
  Result json = Run({"-o", "json", "get", "clusters"});
  nlohmann::json list = nlohmann::json::parse(json.out);
  ASSERT_TRUE(list.is_array());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["topology"]["dims"][1]["name"], "dp");
  Result yaml = Run({"get", "clusters", "-o", "yaml"});
  EXPECT_THAT(yaml.out, StartsWith("- name: llama-serve\n"));
}

TEST_F(SplitctlCommandsTest, DescribeUnknownClusterIsNotFound) {
  Result result = Run({"describe", "cluster", "x"});
  EXPECT_EQ(result.code, kExitError);
  EXPECT_EQ(result.err, "error: NOT_FOUND: cluster \"x\" not found\n");
  Result known = Run({"describe", "cluster", "llama-serve"});
  EXPECT_EQ(known.code, kExitOk);
  EXPECT_THAT(known.out, HasSubstr("  tp    tp             cpu:gloo  -      2       2\n"));
}

TEST_F(SplitctlCommandsTest, PlanJsonIsExactlyOneObject) {
  Result result = Run({"plan", "llama-serve", "--group", "tp", "--rank", "3", "-o", "json"});
  EXPECT_EQ(result.code, kExitOk) << result.err;
  nlohmann::ordered_json json = nlohmann::ordered_json::parse(result.out);  // throws on extras
  std::vector<std::string> keys;
  for (const auto& item : json.items()) keys.push_back(item.key());
  EXPECT_THAT(keys, ElementsAre("cluster", "epoch", "fingerprint", "groups"));
  EXPECT_EQ(json["groups"]["dp"], nlohmann::ordered_json::parse("[[0, 2], [1, 3]]"));
  ASSERT_EQ(service_.plan_requests().size(), 1u);
  EXPECT_EQ(service_.plan_requests()[0].group(), "tp");
  ASSERT_TRUE(service_.plan_requests()[0].has_rank());
  EXPECT_EQ(service_.plan_requests()[0].rank(), 3);
}

TEST_F(SplitctlCommandsTest, PlanTableWithoutFiltersAsksForEverything) {
  Result result = Run({"plan", "llama-serve"});
  EXPECT_EQ(result.code, kExitOk) << result.err;
  EXPECT_THAT(result.out, HasSubstr("KIND tp  backend cpu:gloo  groups 2 x 2  dims tp\n"
                                    "  [0, 1]  [2, 3]\n"));
  ASSERT_EQ(service_.plan_requests().size(), 1u);
  EXPECT_FALSE(service_.plan_requests()[0].has_rank());
  EXPECT_EQ(service_.plan_requests()[0].group(), "");
}

TEST_F(SplitctlCommandsTest, StatusPrintsTablesOrJson) {
  Result table = Run({"status", "llama-serve"});
  EXPECT_EQ(table.code, kExitOk) << table.err;
  EXPECT_THAT(table.out, HasSubstr("State:        READY\n"));
  EXPECT_THAT(table.out, HasSubstr("Readiness:    workload\nWorkload:     READY\n"));
  // IN_PHASE counts from 2024 to the real now.
  EXPECT_THAT(table.out,
              HasSubstr("  RANK  MEMBER  POD    NODE    HOST  STATE   PHASE  IN_PHASE     "
                        "WORKLOAD  READY_MS  REASON\n"
                        "  0     m-0     pod-0  node-a        ACTIVE  READY  "));
  EXPECT_THAT(table.out, MatchesRegex("(.|\n)*  READY  [0-9]+\\.[0-9]s  READY     -\n(.|\n)*"));
  Result json = Run({"status", "llama-serve", "-o", "json"});
  nlohmann::json object = nlohmann::json::parse(json.out);
  EXPECT_EQ(object["state"], "READY");
  EXPECT_EQ(object["readiness"], "workload");
  EXPECT_EQ(object["workload_state"], "READY");
  EXPECT_EQ(object["members"][0]["member_id"], "m-0");
  EXPECT_EQ(object["members"][0]["phase_since"], "2024-05-01T10:00:00Z");
  EXPECT_EQ(object["members"][0]["workload"]["phase"], "READY");
  EXPECT_EQ(object["groups"]["tp"]["ready"], 1);
}

TEST_F(SplitctlCommandsTest, StatusYamlCarriesReadinessAndPhaseTimes) {
  Result yaml = Run({"status", "llama-serve", "-o", "yaml"});
  EXPECT_EQ(yaml.code, kExitOk) << yaml.err;
  const YAML::Node root = YAML::Load(yaml.out);
  EXPECT_EQ(root["readiness"].as<std::string>(), "workload");
  EXPECT_EQ(root["workload_state"].as<std::string>(), "READY");
  ASSERT_TRUE(root["waiting_on"].IsSequence());
  EXPECT_EQ(root["waiting_on"].size(), 0u);
  EXPECT_EQ(root["waiting_on_total"].as<int>(), 0);
  EXPECT_EQ(root["members"][0]["phase_since"].as<std::string>(), "2024-05-01T10:00:00Z");
  EXPECT_EQ(root["members"][0]["workload"]["phase"].as<std::string>(), "READY");
}

TEST_F(SplitctlCommandsTest, TimeoutBoundsEachCall) {
  Result result = Run({"status", "slow", "--timeout", "200ms"});
  EXPECT_EQ(result.code, kExitError);
  EXPECT_EQ(result.err, absl::StrCat("error: no reply from ", address_,
                                     " within 200ms (DEADLINE_EXCEEDED: Deadline Exceeded)\n"));
}

TEST_F(SplitctlCommandsTest, DeleteConfirms) {
  Result result = Run({"delete", "cluster", "llama-serve"});
  EXPECT_EQ(result.code, kExitOk) << result.err;
  EXPECT_EQ(result.out, "cluster/llama-serve deleted\n");
  Result json = Run({"delete", "cluster", "llama-serve", "-o", "json"});
  EXPECT_EQ(nlohmann::json::parse(json.out)["last_epoch"], 4);
  Result missing = Run({"delete", "cluster", "nope"});
  EXPECT_EQ(missing.err, "error: NOT_FOUND: cluster \"nope\" not found\n");
}

TEST_F(SplitctlCommandsTest, DefaultAddressComesFromSplitdAddr) {
  ASSERT_EQ(setenv("SPLITD_ADDR", address_.c_str(), 1), 0);
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(RunSplitctl({"get", "clusters"}, out, err), kExitOk) << err.str();
  EXPECT_THAT(out.str(), HasSubstr("llama-serve"));
  ASSERT_EQ(unsetenv("SPLITD_ADDR"), 0);
}

}  // namespace
}  // namespace splitd::cli
