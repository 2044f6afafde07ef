// AgentService against a real in-process daemon on 127.0.0.1: registration, the plan stream,
// reports, rendezvous, and the status codes of bad input.

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "common/grpc_status.h"
#include "common/status_matchers.h"
#include "daemon/splitd_server.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "splitd/v1/agent_service.grpc.pb.h"
#include "splitd/v1/control_service.grpc.pb.h"

namespace splitd::daemon {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::IsOkAndHolds;
using ::splitd::testing::StatusIs;
using ::testing::HasSubstr;

std::chrono::system_clock::time_point In(std::chrono::milliseconds ms) {
  return std::chrono::system_clock::now() + ms;
}

class AgentServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerConfig config;
    config.listen = "127.0.0.1:0";
    config.shutdown_grace = absl::Seconds(2);
    auto server = SplitdServer::Start(config, &clock_);
    ASSERT_THAT(server, IsOk());
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    control_ = v1::ControlService::NewStub(channel_);
    agent_ = v1::AgentService::NewStub(channel_);

    v1::ApplyTopologyRequest apply;
    apply.mutable_topology()->set_cluster("job");
    for (const char* name : {"tp", "dp"}) {
      v1::Dim* dim = apply.mutable_topology()->add_dims();
      dim->set_name(name);
      dim->set_size(2);
    }
    v1::ApplyTopologyResponse applied;
    grpc::ClientContext context;
    context.set_deadline(In(std::chrono::seconds(20)));
    ASSERT_TRUE(control_->ApplyTopology(&context, apply, &applied).ok());
  }

  static v1::RegisterRequest Identity(int index) {
    v1::RegisterRequest request;
    v1::MemberIdentity* identity = request.mutable_identity();
    identity->set_cluster("job");
    identity->set_pod(absl::StrCat("pod-", index));
    identity->set_node("node-0");
    identity->set_host("127.0.0.1");
    identity->set_local_index(index);
    identity->set_incarnation(absl::StrCat("incarnation-", index));
    request.mutable_capabilities()->add_backends("cpu:gloo");
    return request;
  }

  absl::Status Register(const v1::RegisterRequest& request, v1::MemberCredentials* member) {
    grpc::ClientContext context;
    context.set_deadline(In(std::chrono::seconds(20)));
    v1::RegisterResponse response;
    absl::Status status = FromGrpcStatus(agent_->Register(&context, request, &response));
    if (status.ok() && member != nullptr) {
      member->set_cluster(request.identity().cluster());
      member->set_member_id(response.member_id());
      member->set_session_token(response.session_token());
    }
    return status;
  }

  // Registers the whole world (4 members); returns their credentials by local index.
  std::vector<v1::MemberCredentials> RegisterWorld() {
    std::vector<v1::MemberCredentials> members(4);
    for (int i = 0; i < 4; ++i) EXPECT_THAT(Register(Identity(i), &members[i]), IsOk());
    return members;
  }

  absl::Status KvSet(const v1::MemberCredentials& member, const std::string& key,
                     const std::string& value, int64_t epoch = 1) {
    v1::KvSetRequest request;
    *request.mutable_member() = member;
    request.set_epoch(epoch);
    request.set_key(key);
    request.set_value(value);
    v1::KvSetResponse response;
    grpc::ClientContext context;
    context.set_deadline(In(std::chrono::seconds(20)));
    return FromGrpcStatus(agent_->KvSet(&context, request, &response));
  }

  absl::StatusOr<std::vector<std::string>> KvGet(const v1::MemberCredentials& member,
                                                 std::vector<std::string> keys,
                                                 std::chrono::milliseconds timeout) {
    v1::KvGetRequest request;
    *request.mutable_member() = member;
    request.set_epoch(1);
    for (const std::string& key : keys) request.add_keys(key);
    v1::KvGetResponse response;
    grpc::ClientContext context;
    context.set_deadline(In(timeout));
    absl::Status status = FromGrpcStatus(agent_->KvGet(&context, request, &response));
    if (!status.ok()) return status;
    return std::vector<std::string>(response.values().begin(), response.values().end());
  }

  absl::StatusOr<std::string> KvCompareSet(const v1::MemberCredentials& member,
                                           const std::string& key, const std::string& expected,
                                           const std::string& desired, int64_t epoch = 1) {
    v1::KvCompareSetRequest request;
    *request.mutable_member() = member;
    request.set_epoch(epoch);
    request.set_key(key);
    request.set_expected(expected);
    request.set_desired(desired);
    v1::KvCompareSetResponse response;
    grpc::ClientContext context;
    context.set_deadline(In(std::chrono::seconds(20)));
    absl::Status status = FromGrpcStatus(agent_->KvCompareSet(&context, request, &response));
    if (!status.ok()) return status;
    return response.value();
  }

  absl::StatusOr<v1::KvCheckResponse> KvCheck(const v1::MemberCredentials& member,
                                              std::vector<std::string> keys,
                                              const std::string& prefix, int64_t epoch = 1) {
    v1::KvCheckRequest request;
    *request.mutable_member() = member;
    request.set_epoch(epoch);
    for (const std::string& key : keys) request.add_keys(key);
    request.set_prefix(prefix);
    v1::KvCheckResponse response;
    grpc::ClientContext context;
    context.set_deadline(In(std::chrono::seconds(20)));
    absl::Status status = FromGrpcStatus(agent_->KvCheck(&context, request, &response));
    if (!status.ok()) return status;
    return response;
  }

  absl::StatusOr<bool> KvDelete(const v1::MemberCredentials& member, const std::string& key,
                                int64_t epoch = 1) {
    v1::KvDeleteRequest request;
    *request.mutable_member() = member;
    request.set_epoch(epoch);
    request.set_key(key);
    v1::KvDeleteResponse response;
    grpc::ClientContext context;
    context.set_deadline(In(std::chrono::seconds(20)));
    absl::Status status = FromGrpcStatus(agent_->KvDelete(&context, request, &response));
    if (!status.ok()) return status;
    return response.deleted();
  }

  // Applies a new topology to "job", which starts epoch 2 for the same members.
  void StartEpochTwo() {
    v1::ApplyTopologyRequest apply;
    apply.mutable_topology()->set_cluster("job");
    v1::Dim* dim = apply.mutable_topology()->add_dims();
    dim->set_name("tp");
    dim->set_size(4);
    v1::ApplyTopologyResponse applied;
    grpc::ClientContext context;
    context.set_deadline(In(std::chrono::seconds(20)));
    ASSERT_TRUE(control_->ApplyTopology(&context, apply, &applied).ok());
  }

  absl::Status Health() {
    grpc::ClientContext context;
    context.set_deadline(In(std::chrono::seconds(20)));
    v1::ListClustersResponse response;
    return FromGrpcStatus(control_->ListClusters(&context, {}, &response));
  }

  RealClock clock_;
  std::unique_ptr<SplitdServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ControlService::Stub> control_;
  std::unique_ptr<v1::AgentService::Stub> agent_;
};

TEST_F(AgentServiceTest, WatchPlanDeliversThePlanOnceTheWorldIsPresent) {
  v1::MemberCredentials first;
  ASSERT_THAT(Register(Identity(2), &first), IsOk());

  grpc::ClientContext context;
  context.set_deadline(In(std::chrono::seconds(30)));
  v1::WatchPlanRequest request;
  *request.mutable_member() = first;
  std::unique_ptr<grpc::ClientReader<v1::WatchPlanResponse>> stream =
      agent_->WatchPlan(&context, request);

  std::thread others([this] {
    absl::SleepFor(absl::Milliseconds(200));
    for (int i : {3, 0, 1}) EXPECT_THAT(Register(Identity(i), nullptr), IsOk());
  });
  v1::WatchPlanResponse response;
  ASSERT_TRUE(stream->Read(&response));
  others.join();
  EXPECT_EQ(response.rank(), 2);  // node-0, local index 2
  EXPECT_EQ(response.plan().epoch(), 1);
  EXPECT_EQ(response.plan().world_size(), 4);
  EXPECT_EQ(response.plan().topology().cluster(), "job");
  EXPECT_EQ(response.plan().fingerprint().size(), 64u);
  ASSERT_EQ(response.plan().groups_size(), 2);
  EXPECT_EQ(response.plan().groups(0).split_ranks_size(), 0);  // the generator, not the lists

  // A new topology reaches the open stream as epoch 2.
  v1::ApplyTopologyRequest apply;
  apply.mutable_topology()->set_cluster("job");
  v1::Dim* dim = apply.mutable_topology()->add_dims();
  dim->set_name("tp");
  dim->set_size(4);
  v1::ApplyTopologyResponse applied;
  grpc::ClientContext apply_context;
  ASSERT_TRUE(control_->ApplyTopology(&apply_context, apply, &applied).ok());
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.plan().epoch(), 2);
  EXPECT_EQ(response.rank(), 2);
  context.TryCancel();
}

TEST_F(AgentServiceTest, ReportsDriveTheClusterToReady) {
  std::vector<v1::MemberCredentials> members = RegisterWorld();
  v1::GetStatusRequest status_request;
  status_request.set_cluster("job");
  std::string fingerprint;
  {
    v1::GetStatusResponse status;
    grpc::ClientContext context;
    ASSERT_TRUE(control_->GetStatus(&context, status_request, &status).ok());
    EXPECT_EQ(status.status().state(), v1::PHASE_PLANNED);
    fingerprint = status.status().fingerprint();
  }
  for (int rank = 0; rank < 4; ++rank) {
    v1::ReportGroupStatusRequest report;
    *report.mutable_member() = members[rank];
    report.set_epoch(1);
    report.set_rank(rank);
    report.set_fingerprint(fingerprint);
    report.set_phase(v1::PHASE_READY);
    for (const char* kind : {"tp", "dp"}) {
      v1::GroupReport* group = report.add_groups();
      group->set_kind(kind);
      group->set_backend("cpu:gloo");
      group->set_phase(v1::PHASE_READY);
      group->set_allreduce_value(2);
      group->set_latency_us(50);
    }
    v1::ReportGroupStatusResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(agent_->ReportGroupStatus(&context, report, &response).ok());
    EXPECT_EQ(response.cluster_phase(), rank == 3 ? v1::PHASE_READY : v1::PHASE_PLANNED);
  }
  v1::GetStatusResponse status;
  grpc::ClientContext context;
  ASSERT_TRUE(control_->GetStatus(&context, status_request, &status).ok());
  EXPECT_EQ(status.status().state(), v1::PHASE_READY);
  EXPECT_EQ(status.status().groups(0).ready(), 2);
}

TEST_F(AgentServiceTest, RendezvousSetAndWaitingGet) {
  std::vector<v1::MemberCredentials> members = RegisterWorld();
  std::thread setter([&] {
    absl::SleepFor(absl::Milliseconds(100));
    EXPECT_THAT(KvSet(members[1], "address/1", std::string("\0\1\2", 3)), IsOk());
  });
  absl::StatusOr<std::vector<std::string>> values =
      KvGet(members[0], {"address/1"}, std::chrono::seconds(20));
  setter.join();
  ASSERT_THAT(values, IsOk());
  EXPECT_EQ(values->at(0), std::string("\0\1\2", 3));

  v1::KvAddRequest add;
  *add.mutable_member() = members[2];
  add.set_epoch(1);
  add.set_key("arrived");
  add.set_delta(3);
  v1::KvAddResponse added;
  grpc::ClientContext context;
  ASSERT_TRUE(agent_->KvAdd(&context, add, &added).ok());
  EXPECT_EQ(added.value(), 3);
}

// What torch.distributed's Store asks of the space, as a workload's agent relays it.
TEST_F(AgentServiceTest, CompareSetCheckAndDeleteWorkOnTheEpochsSpace) {
  std::vector<v1::MemberCredentials> members = RegisterWorld();
  EXPECT_THAT(KvCompareSet(members[0], "store/leader", "", "rank-0"), IsOkAndHolds("rank-0"));
  EXPECT_THAT(KvCompareSet(members[1], "store/leader", "", "rank-1"), IsOkAndHolds("rank-0"));
  EXPECT_THAT(KvCompareSet(members[1], "store/leader", "rank-0", "rank-1"), IsOkAndHolds("rank-1"));
  EXPECT_THAT(KvCompareSet(members[2], "store/absent", "x", "y"), IsOkAndHolds("x"));
  ASSERT_THAT(KvSet(members[2], "store/barrier/2", "1"), IsOk());

  absl::StatusOr<v1::KvCheckResponse> checked =
      KvCheck(members[3], {"store/leader", "store/barrier/2"}, "store/barrier/");
  ASSERT_THAT(checked, IsOk());
  EXPECT_TRUE(checked->all_exist());
  EXPECT_EQ(checked->num_keys(), 1);
  checked = KvCheck(members[3], {"store/leader", "store/absent"}, "");
  ASSERT_THAT(checked, IsOk());
  EXPECT_FALSE(checked->all_exist());
  EXPECT_EQ(checked->num_keys(), 2);

  EXPECT_THAT(KvDelete(members[0], "store/leader"), IsOkAndHolds(true));
  EXPECT_THAT(KvDelete(members[0], "store/leader"), IsOkAndHolds(false));
  checked = KvCheck(members[3], {"store/leader"}, "");
  ASSERT_THAT(checked, IsOk());
  EXPECT_FALSE(checked->all_exist());
  EXPECT_EQ(checked->num_keys(), 1);
  // A deleted key is waited for again.
  EXPECT_THAT(KvGet(members[1], {"store/leader"}, std::chrono::milliseconds(300)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST_F(AgentServiceTest, StoreCallsOfAnOldEpochAreAborted) {
  std::vector<v1::MemberCredentials> members = RegisterWorld();
  ASSERT_THAT(KvSet(members[0], "k", "v"), IsOk());
  StartEpochTwo();
  EXPECT_THAT(KvCompareSet(members[0], "k", "v", "w", /*epoch=*/1),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("epoch 1 is over")));
  EXPECT_THAT(KvCheck(members[0], {"k"}, "", /*epoch=*/1),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("epoch 1 is over")));
  EXPECT_THAT(KvDelete(members[0], "k", /*epoch=*/1),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("epoch 1 is over")));
  EXPECT_THAT(KvCompareSet(members[0], "k", "", "w", /*epoch=*/3),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("epoch 3")));
}

TEST_F(AgentServiceTest, BadStoreCallsNameTheFieldAndTheCaller) {
  std::vector<v1::MemberCredentials> members = RegisterWorld();
  EXPECT_THAT(KvCompareSet(members[0], "", "", "v"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("key must not be empty")));
  EXPECT_THAT(KvCompareSet(members[0], "k", "", std::string((1 << 20) + 1, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("desired must be at most")));
  EXPECT_THAT(KvDelete(members[0], ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("key must not be empty")));
  EXPECT_THAT(
      KvCheck(members[0], {"k", ""}, ""),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("keys[1]: key must not be empty")));
  v1::MemberCredentials other_member = members[0];
  other_member.set_member_id(members[1].member_id());
  EXPECT_THAT(KvCheck(other_member, {}, ""),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("another member")));
  EXPECT_THAT(KvDelete(other_member, "k"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("another member")));
  v1::MemberCredentials wrong_token = members[0];
  wrong_token.set_session_token("0000");
  EXPECT_THAT(KvCompareSet(wrong_token, "k", "", "v"),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(Health(), IsOk());
}

TEST_F(AgentServiceTest, GetPastItsDeadlineIsDeadlineExceeded) {
  std::vector<v1::MemberCredentials> members = RegisterWorld();
  EXPECT_THAT(KvGet(members[0], {"never"}, std::chrono::milliseconds(300)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(Health(), IsOk());
}

TEST_F(AgentServiceTest, BadInputGetsTheRightCodeAndTheDaemonKeepsServing) {
  v1::RegisterRequest unknown = Identity(0);
  unknown.mutable_identity()->set_cluster("nope");
  EXPECT_THAT(Register(unknown, nullptr),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("cluster \"nope\" not found")));
  EXPECT_THAT(Register(v1::RegisterRequest(), nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("identity.cluster")));
  v1::RegisterRequest no_pod = Identity(0);
  no_pod.mutable_identity()->clear_pod();
  EXPECT_THAT(Register(no_pod, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("identity.pod")));
  v1::RegisterRequest negative = Identity(0);
  negative.mutable_identity()->set_local_index(-3);
  EXPECT_THAT(Register(negative, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("identity.local_index must be >= 0, got -3")));

  std::vector<v1::MemberCredentials> members = RegisterWorld();
  v1::MemberCredentials wrong_token = members[0];
  wrong_token.set_session_token("0000");
  EXPECT_THAT(KvSet(wrong_token, "k", "v"), StatusIs(absl::StatusCode::kUnauthenticated));
  v1::MemberCredentials other_cluster = members[0];
  other_cluster.set_cluster("nope");
  // A valid session used for another cluster or member is outside its scope.
  EXPECT_THAT(KvSet(other_cluster, "k", "v"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("another member")));
  v1::MemberCredentials no_cluster = members[0];
  no_cluster.clear_cluster();
  EXPECT_THAT(KvSet(no_cluster, "k", "v"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("member.cluster")));
  EXPECT_THAT(KvSet(members[0], "k", std::string((1 << 20) + 1, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("value must be at most")));
  EXPECT_THAT(KvSet(members[0], "", "v"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("key must not be empty")));
  EXPECT_THAT(KvSet(members[0], "k", "v", /*epoch=*/7),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("epoch 7")));
  EXPECT_THAT(KvSet(members[0], "k", "v", /*epoch=*/0),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("epoch 0 is over")));

  v1::ReportGroupStatusRequest other_rank;
  *other_rank.mutable_member() = members[0];
  other_rank.set_epoch(1);
  other_rank.set_rank(3);
  other_rank.set_fingerprint("f");
  other_rank.set_phase(v1::PHASE_BOOTSTRAPPING);
  v1::ReportGroupStatusResponse reported;
  grpc::ClientContext report_context;
  EXPECT_THAT(FromGrpcStatus(agent_->ReportGroupStatus(&report_context, other_rank, &reported)),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("not rank 3")));

  v1::WatchPlanRequest watch;
  *watch.mutable_member() = wrong_token;
  grpc::ClientContext watch_context;
  watch_context.set_deadline(In(std::chrono::seconds(20)));
  auto stream = agent_->WatchPlan(&watch_context, watch);
  v1::WatchPlanResponse ignored;
  EXPECT_FALSE(stream->Read(&ignored));
  EXPECT_THAT(FromGrpcStatus(stream->Finish()), StatusIs(absl::StatusCode::kUnauthenticated));

  v1::HeartbeatRequest heartbeat;
  *heartbeat.mutable_member() = members[1];
  heartbeat.mutable_member()->set_member_id("m-77");
  v1::HeartbeatResponse beat;
  grpc::ClientContext beat_context;
  EXPECT_THAT(FromGrpcStatus(agent_->Heartbeat(&beat_context, heartbeat, &beat)),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("m-77")));

  EXPECT_THAT(Health(), IsOk());
}

TEST_F(AgentServiceTest, AWatchPlanRequestThatDoesNotParseIsInvalid) {
  // WatchPlan reads its request as bytes: bytes that are no WatchPlanRequest (a varint cut
  // short) end the stream with INVALID_ARGUMENT.
  grpc::GenericStub generic(channel_);
  grpc::ClientContext context;
  context.set_deadline(In(std::chrono::seconds(30)));
  grpc::CompletionQueue queue;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
      generic.PrepareCall(&context, "/splitd.v1.AgentService/WatchPlan", &queue);
  const std::string garbage = "\x08\xff\xff\xff";
  grpc::Slice slice(garbage);
  grpc::ByteBuffer request(&slice, 1);
  grpc::Status status;
  void* tag = nullptr;
  bool ok = false;
  // One operation at a time, each awaited: start, the only message, then the status.
  int step = 0;
  call->StartCall(&step);
  ASSERT_TRUE(queue.Next(&tag, &ok));
  call->WriteLast(request, grpc::WriteOptions(), &step);
  ASSERT_TRUE(queue.Next(&tag, &ok));
  call->Finish(&status, &step);
  ASSERT_TRUE(queue.Next(&tag, &ok));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("WatchPlanRequest"));
  queue.Shutdown();
  EXPECT_FALSE(queue.Next(&tag, &ok));
}

TEST_F(AgentServiceTest, DeletingTheClusterEndsOpenStreams) {
  std::vector<v1::MemberCredentials> members = RegisterWorld();
  grpc::ClientContext context;
  context.set_deadline(In(std::chrono::seconds(30)));
  v1::WatchPlanRequest request;
  *request.mutable_member() = members[0];
  auto stream = agent_->WatchPlan(&context, request);
  v1::WatchPlanResponse response;
  ASSERT_TRUE(stream->Read(&response));

  v1::DeleteClusterRequest remove;
  remove.set_name("job");
  v1::DeleteClusterResponse removed;
  grpc::ClientContext delete_context;
  ASSERT_TRUE(control_->DeleteCluster(&delete_context, remove, &removed).ok());
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_THAT(FromGrpcStatus(stream->Finish()), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(AgentServiceTest, ShutdownEndsOpenStreamsPromptly) {
  std::vector<v1::MemberCredentials> members = RegisterWorld();
  grpc::ClientContext context;
  v1::WatchPlanRequest request;
  *request.mutable_member() = members[0];
  auto stream = agent_->WatchPlan(&context, request);
  v1::WatchPlanResponse response;
  ASSERT_TRUE(stream->Read(&response));
  server_->Shutdown();
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_THAT(FromGrpcStatus(stream->Finish()), StatusIs(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace splitd::daemon
