#include "common/daemon_replicas.h"

#include <memory>
#include <string>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"

namespace splitd {
namespace {

TEST(TermWatermarkTest, AdmitsEqualOrHigherTermsAndAnswersWithout) {
  TermWatermark watermark;
  EXPECT_TRUE(watermark.Admit(0));
  EXPECT_TRUE(watermark.Admit(5));
  EXPECT_TRUE(watermark.Admit(5));
  EXPECT_TRUE(watermark.Admit(9));
  EXPECT_EQ(watermark.highest(), 9);
  EXPECT_FALSE(watermark.Admit(5));
  EXPECT_TRUE(watermark.Admit(0));
  EXPECT_EQ(watermark.highest(), 9);
}

TEST(ReplicatedTargetTest, OneAddressIsPlain) {
  std::string target;
  grpc::ChannelArguments args;
  auto replicated = ReplicatedTarget("10.0.0.1:7070", &target, &args);
  ASSERT_TRUE(replicated.ok());
  EXPECT_FALSE(*replicated);
  EXPECT_EQ(target, "10.0.0.1:7070");
}

TEST(ReplicatedTargetTest, AListOfIpsFollowsTheLeader) {
  std::string target;
  grpc::ChannelArguments args;
  auto replicated = ReplicatedTarget("10.0.0.1:7070, 10.0.0.2:7070,10.0.0.3:7071", &target, &args);
  ASSERT_TRUE(replicated.ok());
  EXPECT_TRUE(*replicated);
  EXPECT_EQ(target, "ipv4:10.0.0.1:7070,10.0.0.2:7070,10.0.0.3:7071");
  grpc_channel_args c_args = args.c_channel_args();
  bool has_config = false;
  for (size_t i = 0; i < c_args.num_args; ++i) {
    if (std::string(c_args.args[i].key) == GRPC_ARG_SERVICE_CONFIG) {
      const std::string config = c_args.args[i].value.string;
      EXPECT_NE(config.find("\"serviceName\":\"splitd.v1.Leader\""), std::string::npos);
      EXPECT_NE(config.find("round_robin"), std::string::npos);
      has_config = true;
    }
  }
  EXPECT_TRUE(has_config);
}

TEST(ReplicatedTargetTest, AListOfNamesIsRefusedWithAHint) {
  std::string target;
  grpc::ChannelArguments args;
  auto replicated = ReplicatedTarget("splitd-0:7070,splitd-1:7070", &target, &args);
  ASSERT_FALSE(replicated.ok());
  EXPECT_EQ(replicated.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(replicated.status().message().find("dns:///"), std::string::npos);
}

TEST(ReplicatedTargetTest, ADnsTargetFollowsTheLeader) {
  std::string target;
  grpc::ChannelArguments args;
  auto replicated = ReplicatedTarget("dns:///splitd.ns.svc:7070", &target, &args);
  ASSERT_TRUE(replicated.ok());
  EXPECT_TRUE(*replicated);
  EXPECT_EQ(target, "dns:///splitd.ns.svc:7070");
}

TEST(FirstAddressTest, OfAListAndOfADnsTarget) {
  EXPECT_EQ(FirstAddress("10.0.0.1:1,10.0.0.2:1"), "10.0.0.1:1");
  EXPECT_EQ(FirstAddress("dns:///splitd:7070"), "splitd:7070");
  EXPECT_EQ(FirstAddress("127.0.0.1:7070"), "127.0.0.1:7070");
}

// A server stamping term 5 and a client whose watermark stands at `seen`.
grpc::Status CheckHealthAtTerm(int64_t seen, int64_t* highest_after) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> stamps;
  stamps.push_back(MakeTermStampFactory(5));
  builder.experimental().SetInterceptorCreators(std::move(stamps));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  auto watermark = std::make_shared<TermWatermark>();
  watermark->Admit(seen);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> checks;
  checks.push_back(MakeTermCheckFactory(watermark));
  auto channel = grpc::experimental::CreateCustomChannelWithInterceptors(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials(),
      grpc::ChannelArguments(), std::move(checks));
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  *highest_after = watermark->highest();
  server->Shutdown();
  return status;
}

TEST(TermInterceptorsTest, AnAnswerOfALowerTermIsUnavailable) {
  int64_t highest = 0;
  grpc::Status status = CheckHealthAtTerm(7, &highest);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(status.error_message().find("term 5 after term 7"), std::string::npos);
  EXPECT_EQ(highest, 7);
}

TEST(TermInterceptorsTest, AnAnswerOfAHigherTermPassesAndRaisesTheMark) {
  int64_t highest = 0;
  grpc::Status status = CheckHealthAtTerm(3, &highest);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(highest, 5);
}

}  // namespace
}  // namespace splitd
