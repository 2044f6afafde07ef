// RpcMetrics and the metrics endpoint through a real SplitdServer on 127.0.0.1: real gRPC calls,
// then GET /metrics with an HTTP client.

#include "daemon/rpc_metrics.h"

#include <chrono>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "common/status_matchers.h"
#include "common/version.h"
#include "daemon/splitd_server.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "splitd/v1/agent_service.grpc.pb.h"
#include "splitd/v1/control_service.grpc.pb.h"

namespace splitd::daemon {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(20);
}

class RpcMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerConfig config;
    config.listen = "127.0.0.1:0";
    config.metrics_listen = "127.0.0.1:0";
    config.metrics_port_file = ::testing::TempDir() + "/rpc_metrics_test.metrics_port";
    config.shutdown_grace = absl::Seconds(2);
    auto server = SplitdServer::Start(config, &clock_);
    ASSERT_THAT(server, IsOk());
    server_ = *std::move(server);
    metrics_port_file_ = config.metrics_port_file;
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    control_ = v1::ControlService::NewStub(channel_);
    agent_ = v1::AgentService::NewStub(channel_);
  }

  // The body of GET /metrics.
  std::string Scrape() {
    const std::string& address = server_->metrics_address();
    const size_t colon = address.rfind(':');
    httplib::Client client(address.substr(0, colon), std::stoi(address.substr(colon + 1)));
    httplib::Result result = client.Get("/metrics");
    if (!result) {
      ADD_FAILURE() << "GET /metrics: " << httplib::to_string(result.error());
      return "";
    }
    EXPECT_EQ(result->status, 200);
    EXPECT_EQ(result->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    return result->body;
  }

  grpc::Status GetCluster(const std::string& name) {
    v1::GetClusterRequest request;
    request.set_name(name);
    v1::GetClusterResponse response;
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    return control_->GetCluster(&context, request, &response);
  }

  grpc::Status Apply(const v1::Topology& topology) {
    v1::ApplyTopologyRequest request;
    *request.mutable_topology() = topology;
    v1::ApplyTopologyResponse response;
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    return control_->ApplyTopology(&context, request, &response);
  }

  RealClock clock_;
  std::unique_ptr<SplitdServer> server_;
  std::string metrics_port_file_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ControlService::Stub> control_;
  std::unique_ptr<v1::AgentService::Stub> agent_;
};

TEST_F(RpcMetricsTest, WritesTheMetricsAddressToItsPortFile) {
  std::ifstream in(metrics_port_file_);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(line, server_->metrics_address());
  EXPECT_THAT(line, ::testing::StartsWith("127.0.0.1:"));
  EXPECT_NE(line, "127.0.0.1:0");
}

TEST_F(RpcMetricsTest, CountsUnaryCallsByMethodAndFinalCode) {
  v1::Topology topology;
  topology.set_cluster("llama");
  v1::Dim* dim = topology.add_dims();
  dim->set_name("tp");
  dim->set_size(2);
  ASSERT_TRUE(Apply(topology).ok());
  ASSERT_EQ(GetCluster("llama").error_code(), grpc::StatusCode::OK);
  ASSERT_EQ(GetCluster("missing").error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_EQ(GetCluster("missing").error_code(), grpc::StatusCode::NOT_FOUND);
  dim->set_size(0);
  ASSERT_EQ(Apply(topology).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  const std::string text = Scrape();
  EXPECT_THAT(text, HasSubstr("splitd_rpc_requests_total{method=\"/splitd.v1.ControlService/"
                              "ApplyTopology\",code=\"OK\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_rpc_requests_total{method=\"/splitd.v1.ControlService/"
                              "ApplyTopology\",code=\"INVALID_ARGUMENT\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_rpc_requests_total{method=\"/splitd.v1.ControlService/"
                              "GetCluster\",code=\"OK\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_rpc_requests_total{method=\"/splitd.v1.ControlService/"
                              "GetCluster\",code=\"NOT_FOUND\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("splitd_rpc_duration_seconds_count{method=\"/splitd.v1."
                              "ControlService/GetCluster\",code=\"NOT_FOUND\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("splitd_rpc_duration_seconds_bucket{method=\"/splitd.v1."
                              "ControlService/GetCluster\",code=\"NOT_FOUND\",le=\"+Inf\"} 2\n"));
  // The store decorator saw the new cluster's write; the event stream its first epoch.
  EXPECT_THAT(text, HasSubstr("splitd_store_write_seconds_count{operation=\"put_cluster\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_epoch_transitions_total{cause=\"created\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("splitd_clusters{state=\"PENDING\"} 1\n"));
  EXPECT_THAT(text, HasSubstr(absl::StrCat("splitd_build_info{version=\"", kVersion, "\"} 1\n")));
}

TEST_F(RpcMetricsTest, CountsStreamsWhenTheyEndIncludingRefusedOnes) {
  // A WatchPlan the handler refuses at once (no such member).
  {
    v1::WatchPlanRequest request;
    request.mutable_member()->set_cluster("nowhere");
    request.mutable_member()->set_member_id("m-0");
    request.mutable_member()->set_session_token("token");
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    auto reader = agent_->WatchPlan(&context, request);
    v1::WatchPlanResponse response;
    EXPECT_FALSE(reader->Read(&response));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }
  // A WatchEvents that runs until the client cancels it.
  {
    // From the first retained event: the stream sees the topology applied below however the
    // call and the apply are ordered on the server.
    v1::WatchEventsRequest request;
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    auto reader = control_->WatchEvents(&context, request);
    // An event through the stream shows that the server runs it.
    v1::Topology topology;
    topology.set_cluster("llama");
    v1::Dim* dim = topology.add_dims();
    dim->set_name("tp");
    dim->set_size(2);
    v1::Event event;
    ASSERT_TRUE(Apply(topology).ok());
    ASSERT_TRUE(reader->Read(&event));
    EXPECT_EQ(event.kind(), v1::EVENT_KIND_EPOCH_STARTED);
    context.TryCancel();
    while (reader->Read(&event)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // The server records a stream when it sends its status, which may come just after the
  // client gave up: poll.
  const std::string watch_events =
      "splitd_rpc_requests_total{method=\"/splitd.v1.ControlService/WatchEvents\","
      "code=\"CANCELLED\"} 1\n";
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  std::string text = Scrape();
  while (text.find(watch_events) == std::string::npos && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
    text = Scrape();
  }
  EXPECT_THAT(text, HasSubstr(watch_events));
  EXPECT_THAT(text, HasSubstr("splitd_rpc_requests_total{method=\"/splitd.v1.AgentService/"
                              "WatchPlan\",code=\"NOT_FOUND\"} 1\n"));
}

TEST_F(RpcMetricsTest, CallsGrpcRefusesBeforeAHandlerAreNotCounted) {
  grpc::GenericStub generic(channel_);
  for (const char* method : {"/splitd.v1.ControlService/NoSuchMethod", "/made.up/Call"}) {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    grpc::Slice empty("");
    grpc::ByteBuffer request(&empty, 1);
    grpc::ByteBuffer response;
    grpc::Status status;
    absl::Notification done;
    generic.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                      [&](grpc::Status s) {
                        status = s;
                        done.Notify();
                      });
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(20)));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED) << method;
  }
  const std::string text = Scrape();
  EXPECT_THAT(text, Not(HasSubstr("NoSuchMethod")));
  EXPECT_THAT(text, Not(HasSubstr("made.up")));
  EXPECT_THAT(text, Not(HasSubstr("method=\"unknown\"")));
  EXPECT_THAT(text, Not(HasSubstr("UNIMPLEMENTED")));
}

TEST(RpcMetricsRecordTest, NamesNoServiceDefinesShareOneLabel) {
  metrics::Registry registry;
  RpcMetrics rpc(&registry);
  rpc.Record("/splitd.v1.AgentService/Register", grpc::StatusCode::OK, absl::Milliseconds(2));
  rpc.Record("/splitd.v1.AgentService/Register", grpc::StatusCode::OK, absl::Milliseconds(3));
  rpc.Record("/made.up/Call", grpc::StatusCode::NOT_FOUND, absl::Milliseconds(1));
  rpc.Record("/splitd.v1.ControlService/Nope", grpc::StatusCode::NOT_FOUND, absl::Seconds(1));
  const std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("splitd_rpc_requests_total{method=\"/splitd.v1.AgentService/"
                              "Register\",code=\"OK\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("splitd_rpc_requests_total{method=\"unknown\","
                              "code=\"NOT_FOUND\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("splitd_rpc_duration_seconds_sum{method=\"/splitd.v1.AgentService/"
                              "Register\",code=\"OK\"} 0.005\n"));
  EXPECT_THAT(text, Not(HasSubstr("made.up")));
}

TEST(RpcMetricsLabelTest, KeepsOnlyMethodsALinkedServiceDefines) {
  EXPECT_EQ(RpcMetrics::MethodLabel("/splitd.v1.AgentService/Register"),
            "/splitd.v1.AgentService/Register");
  EXPECT_EQ(RpcMetrics::MethodLabel("/splitd.v1.AgentService/Nope"), "unknown");
  EXPECT_EQ(RpcMetrics::MethodLabel("/splitd.v1.AgentService"), "unknown");
  EXPECT_EQ(RpcMetrics::MethodLabel("splitd.v1.AgentService/Register"), "unknown");
  EXPECT_EQ(RpcMetrics::MethodLabel("/"), "unknown");
  EXPECT_EQ(RpcMetrics::MethodLabel(nullptr), "unknown");
}

TEST(RpcMetricsServerTest, BadMetricsListenIsRefusedNamingTheFlag) {
  RealClock clock;
  ServerConfig config;
  config.listen = "127.0.0.1:0";
  config.metrics_listen = "127.0.0.1";
  EXPECT_THAT(SplitdServer::Start(config, &clock),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--metrics_listen must be HOST:PORT")));
  config.metrics_listen = "127.0.0.1:99999";
  EXPECT_THAT(SplitdServer::Start(config, &clock),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--metrics_listen port")));
}

TEST(RpcMetricsServerTest, NoMetricsListenServesNoMetrics) {
  RealClock clock;
  ServerConfig config;
  config.listen = "127.0.0.1:0";
  auto server = SplitdServer::Start(config, &clock);
  ASSERT_THAT(server, IsOk());
  EXPECT_EQ((*server)->metrics_address(), "");
}

}  // namespace
}  // namespace splitd::daemon
