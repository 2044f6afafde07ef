#include "worker/agent.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/server.h"
#include "gtest/gtest.h"
#include "plan/split_planner.h"
#include "splitd/v1/agent_service.grpc.pb.h"
#include "tests/testing/fake_agent_service.h"
#include "tests/testing/local_grpc_server.h"

namespace splitd::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// A daemon stand-in: accepts one member, streams the plans the test queues, records reports.
class FakeDaemon final : public testing::FakeAgentService {
 public:
  using testing::FakeAgentService::AwaitReport;

  // Waits until a report with `phase` arrived; false after 20 s.
  bool AwaitReport(v1::Phase phase) {
    return AwaitReport(
        [phase](const v1::ReportGroupStatusRequest& report) { return report.phase() == phase; });
  }
};

// A backend that forms every group at once and validates with the group size.
class FakeBuilder : public GroupBuilder {
 public:
  explicit FakeBuilder(int* calls) : calls_(calls) {}
  std::string backend() const override { return "cpu:gloo"; }
  absl::Status BootstrapWorld(const WorldSpec&, RendezvousClient*) override {
    ++*calls_;
    return absl::OkStatus();
  }
  absl::Status FormGroups(const WorldSpec&, RendezvousClient*) override {
    ++*calls_;
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<GroupValidation>> Validate(const WorldSpec& spec) override {
    ++*calls_;
    std::vector<GroupValidation> results;
    for (const GroupAssignment& group : spec.groups) {
      GroupValidation& v = results.emplace_back();
      v.kind = group.kind;
      v.group_index = group.group_index;
      v.ok = true;
      v.allreduce_value = static_cast<double>(group.members.size());
      v.latency_us = 5;
    }
    return results;
  }
  void Release() override {}

 private:
  int* calls_;
};

// World of one: tp and dp of size 1; the single rank is rank 0.
v1::WatchPlanResponse PlanOfOne(const std::string& backend) {
  v1::Topology topology;
  topology.set_cluster("solo");
  topology.set_backend(backend);
  v1::Dim* dim = topology.add_dims();
  dim->set_name("tp");
  dim->set_size(1);
  absl::StatusOr<plan::SplitPlan> plan = plan::SplitPlanner::Build(topology, 1);
  EXPECT_TRUE(plan.ok()) << plan.status();
  v1::WatchPlanResponse message;
  message.set_rank(0);
  message.mutable_plan()->set_cluster("solo");
  message.mutable_plan()->set_epoch(1);
  message.mutable_plan()->set_fingerprint(plan->fingerprint);
  message.mutable_plan()->set_world_size(1);
  message.mutable_plan()->set_method(plan->method);
  *message.mutable_plan()->mutable_topology() = plan->topology;
  return message;
}

class AgentTest : public testing::LocalGrpcServerTest {
 protected:
  std::vector<grpc::Service*> Services() override { return {&service_}; }

  std::unique_ptr<Agent> MakeAgent(AgentOptions options, FaultInjection faults = FaultInjection()) {
    options.cluster = "solo";
    options.pod = "pod-0";
    options.node = "node-0";
    GroupBuilderFactories factories;
    factories["cpu:gloo"] = [this] { return std::make_unique<FakeBuilder>(&builder_calls_); };
    return std::make_unique<Agent>(
        options, grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()), factories,
        faults);
  }

  std::vector<v1::Phase> Phases() {
    std::vector<v1::Phase> phases;
    for (const auto& report : service_.reports()) phases.push_back(report.phase());
    return phases;
  }

  FakeDaemon service_;
  int builder_calls_ = 0;
};

TEST_F(AgentTest, FormsValidatesAndReportsReady) {
  service_.Publish(PlanOfOne("cpu:gloo"));
  auto agent = MakeAgent(AgentOptions());
  absl::Status result;
  std::thread run([&] { result = agent->Run(); });
  ASSERT_TRUE(service_.AwaitReport(v1::PHASE_READY));
  agent->Stop();
  run.join();
  EXPECT_TRUE(result.ok()) << result;

  // Progress is sent without waiting, so it may arrive in any order, even after READY.
  for (int i = 0; i < 1000 && Phases().size() < 4; ++i) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_THAT(Phases(), UnorderedElementsAre(v1::PHASE_BOOTSTRAPPING, v1::PHASE_SPLITTING,
                                             v1::PHASE_VALIDATING, v1::PHASE_READY));
  v1::ReportGroupStatusRequest ready;
  for (const v1::ReportGroupStatusRequest& report : service_.reports()) {
    if (report.phase() == v1::PHASE_READY) ready = report;
  }
  EXPECT_EQ(ready.member().member_id(), "m-1");
  EXPECT_EQ(ready.member().session_token(), "secret");
  EXPECT_EQ(ready.epoch(), 1);
  EXPECT_EQ(ready.rank(), 0);
  EXPECT_EQ(ready.fingerprint(), PlanOfOne("cpu:gloo").plan().fingerprint());
  ASSERT_EQ(ready.groups_size(), 1);
  EXPECT_EQ(ready.groups(0).kind(), "tp");
  EXPECT_EQ(ready.groups(0).backend(), "cpu:gloo");
  EXPECT_EQ(ready.groups(0).phase(), v1::PHASE_READY);
  EXPECT_EQ(ready.groups(0).allreduce_value(), 1);
  EXPECT_GT(ready.timings().groups_ready_ms(), 0);
  EXPECT_EQ(builder_calls_, 3);
  EXPECT_EQ(service_.identity().incarnation().size(), 32u);
  EXPECT_EQ(agent->state().phase, v1::PHASE_READY);
}

TEST_F(AgentTest, InjectedFingerprintFaultFailsWithoutForming) {
  service_.Publish(PlanOfOne("cpu:gloo"));
  FaultInjection faults;
  faults.corrupt_fingerprint = true;
  auto agent = MakeAgent(AgentOptions(), faults);
  std::thread run([&] { agent->Run().IgnoreError(); });
  ASSERT_TRUE(service_.AwaitReport(v1::PHASE_FAILED));
  agent->Stop();
  run.join();
  const v1::ReportGroupStatusRequest failed = service_.reports().back();
  EXPECT_THAT(failed.error(), HasSubstr("rank 0"));
  EXPECT_THAT(failed.error(), HasSubstr(PlanOfOne("cpu:gloo").plan().fingerprint()));
  EXPECT_NE(failed.fingerprint(), PlanOfOne("cpu:gloo").plan().fingerprint());
  EXPECT_EQ(builder_calls_, 0);
}

TEST_F(AgentTest, UnavailableBackendFailsTheRank) {
  service_.Publish(PlanOfOne("cpu:gloo,cuda:nccl"));
  AgentOptions options;
  options.unavailable_backends["cuda:nccl"] = "backend unavailable: no CUDA device";
  auto agent = MakeAgent(options);
  std::thread run([&] { agent->Run().IgnoreError(); });
  ASSERT_TRUE(service_.AwaitReport(v1::PHASE_FAILED));
  agent->Stop();
  run.join();
  const v1::ReportGroupStatusRequest failed = service_.reports().back();
  EXPECT_EQ(failed.error(),
            "rank 0: backend cuda:nccl is not available on this agent (backend unavailable: no "
            "CUDA device)");
  ASSERT_EQ(failed.groups_size(), 2);
  EXPECT_EQ(failed.groups(1).backend(), "cuda:nccl");
  EXPECT_EQ(failed.groups(1).phase(), v1::PHASE_FAILED);
  EXPECT_EQ(builder_calls_, 0);
}

}  // namespace
}  // namespace splitd::worker
