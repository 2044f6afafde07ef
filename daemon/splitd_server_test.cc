#include "daemon/splitd_server.h"

#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/grpc_status.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "splitd/v1/agent_service.grpc.pb.h"
#include "splitd/v1/control_service.grpc.pb.h"

namespace splitd::daemon {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::HasSubstr;

v1::Topology Tp2Pp2Dp2(const std::string& cluster) {
  v1::Topology topology;
  topology.set_cluster(cluster);
  for (const char* name : {"tp", "pp", "dp"}) {
    v1::Dim* dim = topology.add_dims();
    dim->set_name(name);
    dim->set_size(2);
  }
  return topology;
}

class SplitdServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerConfig config;
    config.listen = "127.0.0.1:0";
    config.port_file = ::testing::TempDir() + "/splitd_server_test.port";
    config.shutdown_grace = absl::Seconds(2);
    auto server = SplitdServer::Start(config, &clock_);
    ASSERT_THAT(server, IsOk());
    server_ = *std::move(server);
    port_file_ = config.port_file;
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    control_ = v1::ControlService::NewStub(channel_);
  }

  absl::Status Apply(const v1::Topology& topology, v1::ApplyTopologyResponse* response = nullptr) {
    v1::ApplyTopologyRequest request;
    *request.mutable_topology() = topology;
    v1::ApplyTopologyResponse ignored;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return FromGrpcStatus(
        control_->ApplyTopology(&context, request, response ? response : &ignored));
  }

  grpc::health::v1::HealthCheckResponse::ServingStatus Health() {
    auto stub = grpc::health::v1::Health::NewStub(channel_);
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::Status status = stub->Check(&context, request, &response);
    if (!status.ok()) return grpc::health::v1::HealthCheckResponse::UNKNOWN;
    return response.status();
  }

  RealClock clock_;
  std::unique_ptr<SplitdServer> server_;
  std::string port_file_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ControlService::Stub> control_;
};

TEST_F(SplitdServerTest, WritesTheBoundAddressToThePortFile) {
  std::ifstream in(port_file_);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, server_->address());
  EXPECT_THAT(line, ::testing::StartsWith("127.0.0.1:"));
  EXPECT_NE(line, "127.0.0.1:0");
}

TEST_F(SplitdServerTest, HealthIsServingOnceStartedAndNotAfterShutdown) {
  EXPECT_EQ(Health(), grpc::health::v1::HealthCheckResponse::SERVING);
  server_->Shutdown();
  EXPECT_NE(Health(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(SplitdServerTest, ApplyGetPlanAndDeleteOverGrpc) {
  v1::ApplyTopologyResponse applied;
  ASSERT_THAT(Apply(Tp2Pp2Dp2("llama"), &applied), IsOk());
  EXPECT_TRUE(applied.created());
  EXPECT_EQ(applied.cluster().epoch(), 1);

  v1::GetPlanRequest plan_request;
  plan_request.set_cluster("llama");
  plan_request.set_group("pp");
  v1::GetPlanResponse plan;
  grpc::ClientContext plan_context;
  ASSERT_TRUE(control_->GetPlan(&plan_context, plan_request, &plan).ok());
  ASSERT_EQ(plan.plan().groups_size(), 1);
  EXPECT_EQ(plan.plan().fingerprint(), applied.cluster().fingerprint());
  EXPECT_THAT(plan.plan().groups(0).split_ranks(3).ranks(), ::testing::ElementsAre(5, 7));

  v1::DeleteClusterRequest delete_request;
  delete_request.set_name("llama");
  v1::DeleteClusterResponse deleted;
  grpc::ClientContext delete_context;
  ASSERT_TRUE(control_->DeleteCluster(&delete_context, delete_request, &deleted).ok());
  EXPECT_EQ(deleted.last_epoch(), 1);

  v1::GetClusterRequest get_request;
  get_request.set_name("llama");
  v1::GetClusterResponse got;
  grpc::ClientContext get_context;
  EXPECT_EQ(control_->GetCluster(&get_context, get_request, &got).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(SplitdServerTest, WatchEventsReplaysRetainedEventsThenFollowsNewOnes) {
  ASSERT_THAT(Apply(Tp2Pp2Dp2("first")), IsOk());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  v1::WatchEventsRequest request;
  request.set_cluster("second");  // filtered: "first"'s event is not sent
  std::unique_ptr<grpc::ClientReader<v1::Event>> stream = control_->WatchEvents(&context, request);
  ASSERT_THAT(Apply(Tp2Pp2Dp2("second")), IsOk());
  v1::Event event;
  ASSERT_TRUE(stream->Read(&event));
  EXPECT_EQ(event.cluster(), "second");
  EXPECT_EQ(event.kind(), v1::EVENT_KIND_EPOCH_STARTED);
  EXPECT_EQ(event.epoch(), 1);
  EXPECT_THAT(event.reason(), ::testing::HasSubstr("topology applied: world 8"));
  EXPECT_GT(event.sequence(), 1u);

  // Reconfigure on a cluster without members: refused until ranks are assigned; a stale epoch
  // is ABORTED first.
  v1::ReconfigureRequest reconfigure;
  reconfigure.set_cluster("second");
  reconfigure.set_expected_epoch(7);
  (*reconfigure.mutable_change()->mutable_set_dims())["dp"] = 1;
  v1::ReconfigureResponse reconfigured;
  grpc::ClientContext stale_context;
  EXPECT_EQ(control_->Reconfigure(&stale_context, reconfigure, &reconfigured).error_code(),
            grpc::StatusCode::ABORTED);
  reconfigure.set_expected_epoch(1);
  grpc::ClientContext early_context;
  EXPECT_EQ(control_->Reconfigure(&early_context, reconfigure, &reconfigured).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  // A later cluster change arrives on the open stream.
  v1::DeleteClusterRequest delete_request;
  delete_request.set_name("second");
  v1::DeleteClusterResponse deleted;
  grpc::ClientContext delete_context;
  ASSERT_TRUE(control_->DeleteCluster(&delete_context, delete_request, &deleted).ok());
  ASSERT_TRUE(stream->Read(&event));
  EXPECT_EQ(event.kind(), v1::EVENT_KIND_CLUSTER_DELETED);
  context.TryCancel();
}

struct BadTopologyCase {
  std::string label;
  std::function<void(v1::Topology&)> mutate;
  absl::StatusCode code;
  std::string field;
};

TEST_F(SplitdServerTest, BadTopologiesGetTheirCodeWithTheFieldAndTheDaemonKeepsServing) {
  const std::vector<BadTopologyCase> cases = {
      {"empty document", [](v1::Topology& t) { t.Clear(); }, absl::StatusCode::kInvalidArgument,
       "cluster"},
      {"size 0", [](v1::Topology& t) { t.mutable_dims(1)->set_size(0); },
       absl::StatusCode::kInvalidArgument, "dims[1].size"},
      {"negative size", [](v1::Topology& t) { t.mutable_dims(0)->set_size(-4); },
       absl::StatusCode::kInvalidArgument, "dims[0].size"},
      {"size above 2^20", [](v1::Topology& t) { t.mutable_dims(2)->set_size((1 << 20) + 1); },
       absl::StatusCode::kInvalidArgument, "dims[2].size"},
      {"world above 2^20",
       [](v1::Topology& t) {
         t.mutable_dims(0)->set_size(1 << 10);
         t.mutable_dims(1)->set_size(1 << 10);
       },
       absl::StatusCode::kInvalidArgument, "world size"},
      {"10,000 dims",
       [](v1::Topology& t) {
         t.clear_dims();
         for (int i = 0; i < 10000; ++i) {
           v1::Dim* dim = t.add_dims();
           dim->set_name("d" + std::to_string(i));
           dim->set_size(1);
         }
       },
       absl::StatusCode::kInvalidArgument, "dims"},
      {"empty cluster name", [](v1::Topology& t) { t.set_cluster(""); },
       absl::StatusCode::kInvalidArgument, "cluster"},
      {"name with a space", [](v1::Topology& t) { t.set_cluster("my job"); },
       absl::StatusCode::kInvalidArgument, "cluster"},
      {"dim name with a space", [](v1::Topology& t) { t.mutable_dims(0)->set_name("t p"); },
       absl::StatusCode::kInvalidArgument, "dims[0].name"},
      {"explicit list with a duplicate",
       [](v1::Topology& t) {
         v1::GroupSpec* group = t.add_groups();
         group->set_name("custom");
         v1::RankList* list = group->add_split_ranks();
         list->add_ranks(0);
         list->add_ranks(0);
       },
       absl::StatusCode::kInvalidArgument, "groups[0].split_ranks"},
      {"explicit list out of range",
       [](v1::Topology& t) {
         v1::GroupSpec* group = t.add_groups();
         group->set_name("custom");
         v1::RankList* list = group->add_split_ranks();
         list->add_ranks(3);
         list->add_ranks(8);
       },
       absl::StatusCode::kInvalidArgument, "groups[0].split_ranks"},
      {"64 MiB request", [](v1::Topology& t) { t.set_cluster(std::string(64 << 20, 'x')); },
       absl::StatusCode::kResourceExhausted, ""},
  };
  for (const BadTopologyCase& c : cases) {
    SCOPED_TRACE(c.label);
    v1::Topology topology = Tp2Pp2Dp2("job");
    c.mutate(topology);
    EXPECT_THAT(Apply(topology), StatusIs(c.code, HasSubstr(c.field)));
    EXPECT_EQ(Health(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
  // Nothing was created by any of them, and a good request still works.
  v1::ListClustersResponse listed;
  grpc::ClientContext list_context;
  ASSERT_TRUE(control_->ListClusters(&list_context, {}, &listed).ok());
  EXPECT_EQ(listed.clusters_size(), 0);
  EXPECT_THAT(Apply(Tp2Pp2Dp2("job")), IsOk());
}

TEST_F(SplitdServerTest, RequestsWithoutTheirSubjectAreInvalid) {
  v1::ApplyTopologyRequest no_topology;
  v1::ApplyTopologyResponse applied;
  grpc::ClientContext apply_context;
  grpc::Status status = control_->ApplyTopology(&apply_context, no_topology, &applied);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("topology"));

  v1::GetPlanRequest plan_request;
  v1::GetPlanResponse plan;
  grpc::ClientContext plan_context;
  status = control_->GetPlan(&plan_context, plan_request, &plan);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("cluster"));

  ASSERT_THAT(Apply(Tp2Pp2Dp2("job")), IsOk());
  plan_request.set_cluster("job");
  plan_request.set_rank(-1);
  grpc::ClientContext rank_context;
  status = control_->GetPlan(&rank_context, plan_request, &plan);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("rank"));
}

// What grpc_cli does: list services through reflection and fetch the descriptor of one.
TEST_F(SplitdServerTest, ReflectionListsServicesAndServesTheHealthDescriptor) {
  using grpc::reflection::v1alpha::ServerReflection;
  using grpc::reflection::v1alpha::ServerReflectionRequest;
  using grpc::reflection::v1alpha::ServerReflectionResponse;
  auto stub = ServerReflection::NewStub(channel_);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub->ServerReflectionInfo(&context);

  ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(stream->Write(list));
  ServerReflectionResponse listed;
  ASSERT_TRUE(stream->Read(&listed));
  std::set<std::string> services;
  for (const auto& service : listed.list_services_response().service()) {
    services.insert(service.name());
  }
  EXPECT_TRUE(services.count("splitd.v1.ControlService"));
  EXPECT_TRUE(services.count("grpc.health.v1.Health"));

  for (const char* symbol : {"grpc.health.v1.Health", "splitd.v1.ControlService"}) {
    SCOPED_TRACE(symbol);
    ServerReflectionRequest lookup;
    lookup.set_file_containing_symbol(symbol);
    ASSERT_TRUE(stream->Write(lookup));
    ServerReflectionResponse found;
    ASSERT_TRUE(stream->Read(&found));
    EXPECT_FALSE(found.has_error_response()) << found.error_response().error_message();
    EXPECT_GT(found.file_descriptor_response().file_descriptor_proto_size(), 0);
  }
  stream->WritesDone();
}

// The control service asks the rendezvous spaces who waits for which keys: ranks 0..6 block on
// a key only rank 7 would set, so status names rank 7.
TEST_F(SplitdServerTest, StatusNamesTheRankTheOthersWaitForInTheRendezvous) {
  ASSERT_THAT(Apply(Tp2Pp2Dp2("llama")), IsOk());
  auto agent = v1::AgentService::NewStub(channel_);
  std::vector<v1::MemberCredentials> members;
  for (int i = 0; i < 8; ++i) {
    v1::RegisterRequest request;
    v1::MemberIdentity* identity = request.mutable_identity();
    identity->set_cluster("llama");
    identity->set_pod(absl::StrCat("pod-", i));
    identity->set_node(absl::StrCat("node-", i / 4));
    identity->set_host("127.0.0.1");
    identity->set_local_index(i % 4);
    identity->set_incarnation(absl::StrCat("inc-", i));
    request.mutable_capabilities()->add_backends("cpu:gloo");
    v1::RegisterResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(agent->Register(&context, request, &response).ok());
    v1::MemberCredentials credentials;
    credentials.set_cluster("llama");
    credentials.set_member_id(response.member_id());
    credentials.set_session_token(response.session_token());
    members.push_back(credentials);  // rank i: node i / 4, local index i % 4
  }
  std::vector<std::thread> waiters;
  for (int rank = 0; rank < 7; ++rank) {
    waiters.emplace_back([&agent, member = members[static_cast<size_t>(rank)]] {
      v1::KvGetRequest request;
      *request.mutable_member() = member;
      request.set_epoch(1);
      request.add_keys("bootstrap/7");
      v1::KvGetResponse response;
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
      agent->KvGet(&context, request, &response);
    });
  }

  v1::ClusterStatus status;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  int blocked = 0;
  while (blocked < 7 && absl::Now() < deadline) {
    v1::GetStatusRequest request;
    request.set_cluster("llama");
    v1::GetStatusResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(control_->GetStatus(&context, request, &response).ok());
    status = response.status();
    blocked = 0;
    for (const v1::MemberStatus& member : status.members()) {
      blocked += member.waiting_for_keys_size() > 0 ? 1 : 0;
    }
    if (blocked < 7) absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(blocked, 7) << status.DebugString();
  EXPECT_THAT(status.members(0).waiting_for_keys(), ::testing::ElementsAre("bootstrap/7"));
  ASSERT_EQ(status.waiting_on_size(), 1) << status.DebugString();
  EXPECT_EQ(status.waiting_on_total(), 1);
  EXPECT_EQ(status.waiting_on(0).rank(), 7);
  EXPECT_EQ(status.waiting_on(0).member_id(), members[7].member_id());
  EXPECT_EQ(status.waiting_on(0).layer(), "agent");
  EXPECT_EQ(status.waiting_on(0).phase(), v1::PHASE_PLANNED);

  v1::KvSetRequest set;
  *set.mutable_member() = members[7];
  set.set_epoch(1);
  set.set_key("bootstrap/7");
  set.set_value("10.0.0.7:29500");
  v1::KvSetResponse set_response;
  grpc::ClientContext context;
  ASSERT_TRUE(agent->KvSet(&context, set, &set_response).ok());
  for (std::thread& waiter : waiters) waiter.join();
}

TEST(SplitdServerStartTest, BadListenAddressIsRefused) {
  RealClock clock;
  ServerConfig config;
  config.listen = "no-port";
  EXPECT_THAT(SplitdServer::Start(config, &clock),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--listen")));
  config.listen = "127.0.0.1:99999";
  EXPECT_THAT(SplitdServer::Start(config, &clock),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--listen")));
}

}  // namespace
}  // namespace splitd::daemon
