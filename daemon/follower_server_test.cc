#include "daemon/follower_server.h"

#include <memory>
#include <string>

#include "common/daemon_replicas.h"
#include "common/status_matchers.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "splitd/v1/agent_service.grpc.pb.h"

namespace splitd::daemon {
namespace {

using splitd::testing::IsOk;

grpc::health::v1::HealthCheckResponse::ServingStatus Health(grpc::Channel* channel,
                                                            const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(
      std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel*) {}));
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  if (!stub->Check(&context, request, &response).ok()) {
    return grpc::health::v1::HealthCheckResponse::UNKNOWN;
  }
  return response.status();
}

TEST(FollowerServerTest, AliveButNotLeadingAndEveryCallIsSentToTheLeader) {
  auto server = FollowerServer::Start("127.0.0.1:0", nullptr, [] { return "10.1.2.3:7070"; });
  ASSERT_THAT(server, IsOk());
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string((*server)->port()),
                                     grpc::InsecureChannelCredentials());
  EXPECT_EQ(Health(channel.get(), ""), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(Health(channel.get(), kLeaderHealthService),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);

  auto stub = v1::AgentService::NewStub(channel);
  grpc::ClientContext context;
  v1::RegisterRequest request;
  v1::RegisterResponse response;
  grpc::Status status = stub->Register(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(status.error_message().find("the leader is at 10.1.2.3:7070"), std::string::npos);
  auto leader = context.GetServerInitialMetadata().find(kLeaderMetadata);
  ASSERT_NE(leader, context.GetServerInitialMetadata().end());
  EXPECT_EQ(std::string(leader->second.data(), leader->second.size()), "10.1.2.3:7070");
}

TEST(FollowerServerTest, WithoutALeaderTheRefusalSaysSo) {
  auto server = FollowerServer::Start("127.0.0.1:0", nullptr, [] { return std::string(); });
  ASSERT_THAT(server, IsOk());
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string((*server)->port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::AgentService::NewStub(channel);
  grpc::ClientContext context;
  v1::HeartbeatRequest request;
  v1::HeartbeatResponse response;
  grpc::Status status = stub->Heartbeat(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(status.error_message().find("no replica leads right now"), std::string::npos);
}

}  // namespace
}  // namespace splitd::daemon
