// End to end: the real splitd with admin and observer token files, and clusters with join
// tokens. Every RPC of both services is tried without credentials, with a wrong token, with a
// token of another scope (observer, join, another cluster's, another member's session) and with
// the right one; the real splitctl and splitd-agent binaries carry their tokens from files; no
// token reaches a log, the audit trail or the store.

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/bearer_token.h"
#include "common/status_matchers.h"
#include "common/topology_document.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "splitd/v1/agent_service.grpc.pb.h"
#include "splitd/v1/control_service.grpc.pb.h"
#include "tests/testing/splitd_processes.h"
#include "tests/testing/subprocess.h"

namespace splitd {
namespace {

using ::splitd::testing::CommandResult;
using ::splitd::testing::IsOk;
using ::splitd::testing::RunCommand;
using ::splitd::testing::RunfilePath;
using ::splitd::testing::Subprocess;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAdmin[] = "admin-7f3c9a1e5b2d4c6f8a0b";
constexpr char kAdminNext[] = "admin-next-2b4d6f8a0c1e3a5c";
constexpr char kObserver[] = "observer-9e8d7c6b5a4f3e2d";
constexpr char kJoinAlpha[] = "join-alpha-1a2b3c4d5e6f7a8b";
constexpr char kJoinBeta[] = "join-beta-8b7a6f5e4d3c2b1a";
constexpr char kWrong[] = "not-a-token-of-this-daemon";

constexpr char kTopology[] =
    "cluster: NAME\ndims:\n  - {name: dp, size: 2}\nnodes: {gpus_per_node: 2}\n"
    "groups:\n  - {name: dp, dims: [dp]}\n";

std::string Topology(const std::string& name) {
  std::string text = kTopology;
  text.replace(text.find("NAME"), 4, name);
  return text;
}

std::string WriteFile(const std::string& name, const std::string& contents) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::trunc) << contents;
  return path;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// How a call presents itself.
struct Credential {
  std::string label;
  std::optional<std::string> header;  // the whole "authorization" value; nullopt: none
};

Credential None() { return {"no credentials", std::nullopt}; }
Credential Bearer(std::string label, const std::string& token) {
  return {std::move(label), absl::StrCat("Bearer ", token)};
}

std::unique_ptr<grpc::ClientContext> ContextWith(const Credential& credential) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (credential.header.has_value()) context->AddMetadata("authorization", *credential.header);
  return context;
}

class AuthEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = ::testing::TempDir() + "/auth_state_" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(data_dir_);
    admin_file_ = WriteFile("admin_tokens", std::string(kAdmin) + "\n");
    observer_file_ = WriteFile("observer_tokens", std::string(kObserver) + "\n");
    join_alpha_file_ = WriteFile("join_alpha", std::string(kJoinAlpha) + "\n");
    admin_one_file_ = WriteFile("admin_token", std::string(kAdmin) + "\n");
    observer_one_file_ = WriteFile("observer_token", std::string(kObserver) + "\n");
  }

  void TearDown() override {
    testing::TerminateAll(agents_, /*expect_zero_exit=*/false);
    if (daemon_ != nullptr) {
      testing::Terminate(*daemon_, /*expect_zero_exit=*/true);
      // Not a single token in the log (at debug level), the audit trail or the stored state.
      std::string stored;
      for (const auto& entry : std::filesystem::recursive_directory_iterator(data_dir_)) {
        if (entry.is_regular_file()) stored += ReadAll(entry.path().string());
      }
      for (const char* token : {kAdmin, kAdminNext, kObserver, kJoinAlpha, kJoinBeta, kWrong}) {
        EXPECT_THAT(daemon_->Stderr(), Not(HasSubstr(token)));
        EXPECT_THAT(stored, Not(HasSubstr(token)));
        for (auto& agent : agents_) EXPECT_THAT(agent->Stderr(), Not(HasSubstr(token)));
      }
    }
  }

  void StartDaemon() {
    auto daemon = testing::StartDaemon(
        ::testing::TempDir() + "/auth_splitd.port",
        {"--data_dir=" + data_dir_, "--log_level=debug", "--admin_token_file=" + admin_file_,
         "--observer_token_file=" + observer_file_});
    ASSERT_THAT(daemon, IsOk());
    daemon_ = std::move(daemon->process);
    address_ = daemon->address;
    auto channel = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
    control_ = v1::ControlService::NewStub(channel);
    agent_ = v1::AgentService::NewStub(channel);
  }

  grpc::Status Apply(const std::string& name, const Credential& credential,
                     const std::string& join_token) {
    v1::ApplyTopologyRequest request;
    auto topology = TopologyDocument::Parse(Topology(name));
    EXPECT_THAT(topology, IsOk());
    *request.mutable_topology() = *topology;
    request.set_join_token(join_token);
    v1::ApplyTopologyResponse response;
    return control_->ApplyTopology(ContextWith(credential).get(), request, &response);
  }

  // Registers pod `pod` of `cluster` with its join token; its credentials.
  v1::MemberCredentials Join(const std::string& cluster, const std::string& join_token, int index) {
    v1::RegisterRequest request;
    v1::MemberIdentity* identity = request.mutable_identity();
    identity->set_cluster(cluster);
    identity->set_pod(absl::StrCat(cluster, "-pod-", index));
    identity->set_node("node-0");
    identity->set_host("127.0.0.1");
    identity->set_local_index(index);
    identity->set_incarnation(absl::StrCat("incarnation-", cluster, "-", index));
    request.mutable_capabilities()->add_backends("cpu:gloo");
    v1::RegisterResponse response;
    grpc::Status status =
        agent_->Register(ContextWith(Bearer("join", join_token)).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    v1::MemberCredentials credentials;
    credentials.set_cluster(cluster);
    credentials.set_member_id(response.member_id());
    credentials.set_session_token(response.session_token());
    return credentials;
  }

  CommandResult Splitctl(std::vector<std::string> args, const std::string& stdin_text = "",
                         std::vector<std::string> env = {}) {
    args.insert(args.begin(), {"--timeout", "5"});
    return testing::RunSplitctl(address_, args, stdin_text, absl::Seconds(120), env);
  }

  std::string data_dir_;
  std::string admin_file_, observer_file_, join_alpha_file_, admin_one_file_, observer_one_file_;
  std::unique_ptr<Subprocess> daemon_;
  std::vector<std::unique_ptr<Subprocess>> agents_;
  std::string address_;
  std::unique_ptr<v1::ControlService::Stub> control_;
  std::unique_ptr<v1::AgentService::Stub> agent_;
};

TEST_F(AuthEndToEndTest, EveryControlCallNeedsATokenOfTheRightScope) {
  StartDaemon();
  ASSERT_TRUE(Apply("alpha", Bearer("admin", kAdmin), kJoinAlpha).ok());
  ASSERT_TRUE(Apply("beta", Bearer("admin", kAdmin), kJoinBeta).ok());
  const v1::MemberCredentials alpha0 = Join("alpha", kJoinAlpha, 0);
  Join("alpha", kJoinAlpha, 1);  // the world is complete: ranks are assigned

  using Call = std::function<grpc::Status(grpc::ClientContext*)>;
  struct Rpc {
    std::string name;
    bool changes_state;
    Call call;
  };
  v1::ApplyTopologyRequest apply;
  *apply.mutable_topology() = *TopologyDocument::Parse(Topology("alpha"));
  const std::vector<Rpc> rpcs = {
      {"ApplyTopology", true,
       [&](grpc::ClientContext* c) {
         v1::ApplyTopologyResponse r;
         return control_->ApplyTopology(c, apply, &r);
       }},
      {"GetCluster", false,
       [&](grpc::ClientContext* c) {
         v1::GetClusterRequest q;
         q.set_name("alpha");
         v1::GetClusterResponse r;
         return control_->GetCluster(c, q, &r);
       }},
      {"ListClusters", false,
       [&](grpc::ClientContext* c) {
         v1::ListClustersResponse r;
         return control_->ListClusters(c, v1::ListClustersRequest(), &r);
       }},
      {"DeleteCluster", true,
       [&](grpc::ClientContext* c) {
         v1::DeleteClusterRequest q;
         q.set_name("no-such-cluster");
         v1::DeleteClusterResponse r;
         return control_->DeleteCluster(c, q, &r);
       }},
      {"GetPlan", false,
       [&](grpc::ClientContext* c) {
         v1::GetPlanRequest q;
         q.set_cluster("alpha");
         v1::GetPlanResponse r;
         return control_->GetPlan(c, q, &r);
       }},
      {"GetStatus", false,
       [&](grpc::ClientContext* c) {
         v1::GetStatusRequest q;
         q.set_cluster("alpha");
         v1::GetStatusResponse r;
         return control_->GetStatus(c, q, &r);
       }},
      {"Reconfigure", true,
       [&](grpc::ClientContext* c) {
         v1::ReconfigureRequest q;
         q.set_cluster("alpha");
         q.set_expected_epoch(99);  // stale on purpose: allowed calls end ABORTED, changing nothing
         (*q.mutable_change()->mutable_set_dims())["dp"] = 1;
         v1::ReconfigureResponse r;
         return control_->Reconfigure(c, q, &r);
       }},
      {"Reconfigure(dry run)", false,
       [&](grpc::ClientContext* c) {
         v1::ReconfigureRequest q;
         q.set_cluster("alpha");
         q.set_expected_epoch(1);
         q.set_dry_run(true);
         (*q.mutable_change()->mutable_set_dims())["dp"] = 1;
         v1::ReconfigureResponse r;
         return control_->Reconfigure(c, q, &r);
       }},
      {"WatchEvents", false,
       [&](grpc::ClientContext* c) {
         v1::WatchEventsRequest q;
         q.set_cluster("alpha");
         auto reader = control_->WatchEvents(c, q);
         v1::Event event;
         if (reader->Read(&event)) {
           c->TryCancel();  // allowed: the stream was open and delivered an event
           while (reader->Read(&event)) {
           }
           reader->Finish();
           return grpc::Status::OK;
         }
         return reader->Finish();
       }},
  };

  const std::vector<Credential> unauthenticated = {None(),
                                                   Bearer("a wrong token", kWrong),
                                                   {"a Basic header", "Basic YWRtaW46YWRtaW4="},
                                                   {"an empty bearer", "Bearer "}};
  const std::vector<Credential> out_of_scope = {
      Bearer("cluster alpha's join token", kJoinAlpha),
      Bearer("cluster beta's join token", kJoinBeta),
      Bearer("a member's session token", alpha0.session_token())};

  for (const Rpc& rpc : rpcs) {
    for (const Credential& credential : unauthenticated) {
      grpc::Status status = rpc.call(ContextWith(credential).get());
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << rpc.name << " with " << credential.label << ": " << status.error_message();
    }
    for (const Credential& credential : out_of_scope) {
      grpc::Status status = rpc.call(ContextWith(credential).get());
      EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
          << rpc.name << " with " << credential.label << ": " << status.error_message();
    }
    grpc::Status observed = rpc.call(ContextWith(Bearer("observer", kObserver)).get());
    if (rpc.changes_state) {
      EXPECT_EQ(observed.error_code(), grpc::StatusCode::PERMISSION_DENIED)
          << rpc.name << " with the observer token: " << observed.error_message();
      EXPECT_THAT(observed.error_message(), HasSubstr("observer token may only read"));
    } else {
      EXPECT_TRUE(observed.ok()) << rpc.name
                                 << " with the observer token: " << observed.error_message();
    }
    grpc::Status admitted = rpc.call(ContextWith(Bearer("admin", kAdmin)).get());
    EXPECT_NE(admitted.error_code(), grpc::StatusCode::UNAUTHENTICATED) << rpc.name;
    EXPECT_NE(admitted.error_code(), grpc::StatusCode::PERMISSION_DENIED) << rpc.name;
  }
  // The admin calls were real: the stale Reconfigure was ABORTED, the unknown delete NOT_FOUND.
  EXPECT_EQ(rpcs[6].call(ContextWith(Bearer("admin", kAdmin)).get()).error_code(),
            grpc::StatusCode::ABORTED);
  EXPECT_EQ(rpcs[3].call(ContextWith(Bearer("admin", kAdmin)).get()).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // With tokens required, a new cluster needs a join token; a bad one is refused by field.
  grpc::Status no_join = Apply("gamma", Bearer("admin", kAdmin), "");
  EXPECT_EQ(no_join.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(no_join.error_message(), HasSubstr("join_token is required"));
  grpc::Status weak_join = Apply("gamma", Bearer("admin", kAdmin), "weak");
  EXPECT_EQ(weak_join.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(weak_join.error_message(), HasSubstr("join_token: a token must be 16"));
}

TEST_F(AuthEndToEndTest, AgentCallsAreBoundToTheClusterAndTheMember) {
  StartDaemon();
  ASSERT_TRUE(Apply("alpha", Bearer("admin", kAdmin), kJoinAlpha).ok());
  ASSERT_TRUE(Apply("beta", Bearer("admin", kAdmin), kJoinBeta).ok());

  // Register: only alpha's join token joins alpha.
  v1::RegisterRequest register_request;
  v1::MemberIdentity* identity = register_request.mutable_identity();
  identity->set_cluster("alpha");
  identity->set_pod("intruder");
  identity->set_node("node-9");
  identity->set_host("127.0.0.1");
  identity->set_incarnation("intruder-1");
  const auto try_register = [&](const Credential& credential) {
    v1::RegisterResponse response;
    return agent_->Register(ContextWith(credential).get(), register_request, &response);
  };
  for (const Credential& credential :
       {None(), Bearer("a wrong token", kWrong), Credential{"a Basic header", "Basic abc"}}) {
    EXPECT_EQ(try_register(credential).error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << credential.label;
  }
  for (const Credential& credential :
       {Bearer("cluster beta's join token", kJoinBeta), Bearer("the admin token", kAdmin),
        Bearer("the observer token", kObserver)}) {
    EXPECT_EQ(try_register(credential).error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << credential.label;
  }

  const v1::MemberCredentials alpha0 = Join("alpha", kJoinAlpha, 0);
  const v1::MemberCredentials alpha1 = Join("alpha", kJoinAlpha, 1);
  const v1::MemberCredentials beta0 = Join("beta", kJoinBeta, 0);
  // A session token is no join token either.
  EXPECT_EQ(try_register(Bearer("a session token", beta0.session_token())).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  using Call = std::function<grpc::Status(const v1::MemberCredentials&)>;
  const auto context = [] { return ContextWith(None()); };
  const std::vector<std::pair<std::string, Call>> rpcs = {
      {"WatchPlan",
       [&](const v1::MemberCredentials& member) {
         v1::WatchPlanRequest q;
         *q.mutable_member() = member;
         auto c = context();
         auto reader = agent_->WatchPlan(c.get(), q);
         v1::WatchPlanResponse plan;
         if (reader->Read(&plan)) {
           c->TryCancel();
           while (reader->Read(&plan)) {
           }
           reader->Finish();
           return grpc::Status::OK;
         }
         return reader->Finish();
       }},
      {"Heartbeat",
       [&](const v1::MemberCredentials& member) {
         v1::HeartbeatRequest q;
         *q.mutable_member() = member;
         q.set_epoch(1);
         v1::HeartbeatResponse r;
         return agent_->Heartbeat(context().get(), q, &r);
       }},
      {"ReportGroupStatus",
       [&](const v1::MemberCredentials& member) {
         v1::ReportGroupStatusRequest q;
         *q.mutable_member() = member;
         q.set_epoch(1);
         q.set_rank(member.member_id() == alpha1.member_id() ? 1 : 0);
         q.set_fingerprint("not-the-fingerprint");
         q.set_phase(v1::PHASE_BOOTSTRAPPING);
         v1::ReportGroupStatusResponse r;
         return agent_->ReportGroupStatus(context().get(), q, &r);
       }},
      {"KvSet",
       [&](const v1::MemberCredentials& member) {
         v1::KvSetRequest q;
         *q.mutable_member() = member;
         q.set_epoch(1);
         q.set_key("k");
         q.set_value("v");
         v1::KvSetResponse r;
         return agent_->KvSet(context().get(), q, &r);
       }},
      {"KvGet",
       [&](const v1::MemberCredentials& member) {
         v1::KvGetRequest q;
         *q.mutable_member() = member;
         q.set_epoch(1);
         q.add_keys("k");
         v1::KvGetResponse r;
         auto c = context();
         c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
         return agent_->KvGet(c.get(), q, &r);
       }},
      {"KvAdd",
       [&](const v1::MemberCredentials& member) {
         v1::KvAddRequest q;
         *q.mutable_member() = member;
         q.set_epoch(1);
         q.set_key("counter");
         q.set_delta(1);
         v1::KvAddResponse r;
         return agent_->KvAdd(context().get(), q, &r);
       }},
      {"KvCompareSet",
       [&](const v1::MemberCredentials& member) {
         v1::KvCompareSetRequest q;
         *q.mutable_member() = member;
         q.set_epoch(1);
         q.set_key("swap");
         q.set_desired("v");
         v1::KvCompareSetResponse r;
         return agent_->KvCompareSet(context().get(), q, &r);
       }},
      {"KvCheck",
       [&](const v1::MemberCredentials& member) {
         v1::KvCheckRequest q;
         *q.mutable_member() = member;
         q.set_epoch(1);
         q.add_keys("k");
         v1::KvCheckResponse r;
         return agent_->KvCheck(context().get(), q, &r);
       }},
      {"KvDelete",
       [&](const v1::MemberCredentials& member) {
         v1::KvDeleteRequest q;
         *q.mutable_member() = member;
         q.set_epoch(1);
         q.set_key("gone");
         v1::KvDeleteResponse r;
         return agent_->KvDelete(context().get(), q, &r);
       }},
  };

  v1::MemberCredentials no_session = alpha0;
  no_session.clear_session_token();
  v1::MemberCredentials wrong_session = alpha0;
  wrong_session.set_session_token(kWrong);
  v1::MemberCredentials join_as_session = alpha0;
  join_as_session.set_session_token(kJoinAlpha);
  v1::MemberCredentials other_member = alpha0;  // alpha1's session acting as alpha0
  other_member.set_session_token(alpha1.session_token());
  v1::MemberCredentials other_cluster_member = alpha0;  // beta0's session acting as alpha0
  other_cluster_member.set_session_token(beta0.session_token());
  v1::MemberCredentials into_other_cluster = beta0;  // beta0 reaching into alpha
  into_other_cluster.set_cluster("alpha");

  for (const auto& [name, call] : rpcs) {
    for (const auto& [label, member] : std::vector<std::pair<std::string, v1::MemberCredentials>>{
             {"no session token", no_session},
             {"a wrong session token", wrong_session},
             {"a join token as the session", join_as_session}}) {
      grpc::Status status = call(member);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << name << " with " << label << ": " << status.error_message();
    }
    for (const auto& [label, member] : std::vector<std::pair<std::string, v1::MemberCredentials>>{
             {"another member's session", other_member},
             {"another cluster's member's session", other_cluster_member},
             {"its session in another cluster", into_other_cluster}}) {
      grpc::Status status = call(member);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
          << name << " with " << label << ": " << status.error_message();
    }
    grpc::Status own = call(alpha0);
    EXPECT_NE(own.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << name << ": " << own.error_message();
    EXPECT_NE(own.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << name << ": " << own.error_message();
  }
}

TEST_F(AuthEndToEndTest, SplitctlAndAgentsCarryTheirTokensFromFiles) {
  StartDaemon();
  EXPECT_THAT(daemon_->Stderr(), Not(HasSubstr("no --admin_token_file")));

  CommandResult anonymous = Splitctl({"get", "clusters"});
  EXPECT_EQ(anonymous.exit_code, 1);
  EXPECT_THAT(anonymous.err, HasSubstr("UNAUTHENTICATED"));
  EXPECT_THAT(anonymous.err, HasSubstr("--token_file"));

  CommandResult no_join =
      Splitctl({"--token_file", admin_one_file_, "apply", "-f", "-"}, Topology("alpha"));
  EXPECT_EQ(no_join.exit_code, 1);
  EXPECT_THAT(no_join.err, HasSubstr("join_token is required"));

  CommandResult applied = Splitctl(
      {"--token_file", admin_one_file_, "apply", "-f", "-", "--join_token_file", join_alpha_file_},
      Topology("alpha"));
  ASSERT_EQ(applied.exit_code, 0) << applied.err;

  CommandResult observed = Splitctl({"get", "clusters", "alpha", "-o", "json"}, "",
                                    {"SPLITD_TOKEN_FILE=" + observer_one_file_});
  EXPECT_EQ(observed.exit_code, 0) << observed.err;
  EXPECT_THAT(observed.out, HasSubstr("\"join_token_set\": true"));
  CommandResult observer_delete =
      Splitctl({"delete", "cluster", "alpha"}, "", {"SPLITD_TOKEN_FILE=" + observer_one_file_});
  EXPECT_EQ(observer_delete.exit_code, 1);
  EXPECT_THAT(observer_delete.err, HasSubstr("PERMISSION_DENIED"));

  // An agent with a wrong join token stops at once with the reason.
  const std::string wrong_file = WriteFile("join_wrong", std::string(kWrong) + "\n");
  auto refused =
      RunCommand({RunfilePath("worker/splitd-agent"), "--daemon=" + address_, "--cluster=alpha",
                  "--node=node-0", "--local_index=0", "--pod=wrong", "--host=127.0.0.1",
                  "--nccl_library=", "--join_token_file=" + wrong_file},
                 "", absl::Seconds(60));
  ASSERT_THAT(refused, IsOk());
  EXPECT_EQ(refused->exit_code, 1);
  EXPECT_THAT(refused->err,
              HasSubstr("UNAUTHENTICATED: Register refused: the join token is not valid"));
  EXPECT_THAT(refused->err, Not(HasSubstr(kWrong)));

  // Two agents with alpha's join token (one by flag, one by environment) reach READY.
  for (int index = 0; index < 2; ++index) {
    std::vector<std::string> extra = {"--nccl_library=", "--timeout_ms=30000"};
    std::vector<std::string> env;
    if (index == 0) {
      extra.push_back("--join_token_file=" + join_alpha_file_);
    } else {
      env.push_back("SPLITD_JOIN_TOKEN_FILE=" + join_alpha_file_);
    }
    auto agent = testing::StartOrFail(testing::AgentArgv(address_, "alpha", "node-0", index,
                                                         absl::StrCat("agent-", index), extra),
                                      env);
    ASSERT_NE(agent, nullptr);
    agents_.push_back(std::move(agent));
  }
  CommandResult watched = Splitctl({"--token_file", observer_one_file_, "status", "alpha",
                                    "--watch", "--interval=0.2s", "--watch_timeout=90s"});
  EXPECT_EQ(watched.exit_code, 0) << watched.out << watched.err << agents_[0]->Stderr()
                                  << agents_[1]->Stderr();
  EXPECT_THAT(watched.out, HasSubstr("READY"));

  // Rotation: a new admin token is taken up without a restart and the old one stops working.
  WriteFile("admin_tokens", std::string(kAdminNext) + "\n");
  const std::string next_file = WriteFile("admin_token_next", std::string(kAdminNext) + "\n");
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  CommandResult old_token, new_token;
  do {
    absl::SleepFor(absl::Milliseconds(200));
    old_token = Splitctl({"--token_file", admin_one_file_, "get", "clusters"});
    new_token = Splitctl({"--token_file", next_file, "get", "clusters"});
  } while ((old_token.exit_code == 0 || new_token.exit_code != 0) && absl::Now() < deadline);
  EXPECT_EQ(new_token.exit_code, 0) << new_token.err;
  EXPECT_EQ(old_token.exit_code, 1);
  EXPECT_THAT(old_token.err, HasSubstr("UNAUTHENTICATED"));
  EXPECT_THAT(daemon_->Stderr(), HasSubstr("--admin_token_file: reloaded"));
}

TEST_F(AuthEndToEndTest, BadTokenFlagsExitTwoNamingTheFlag) {
  const std::string weak = WriteFile("weak_admin", "weak\n");
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{"--observer_token_file=" + observer_file_}, "--observer_token_file needs"},
           {{"--admin_token_file=/nonexistent/admin"}, "--admin_token_file: cannot read"},
           {{"--admin_token_file=" + weak}, "--admin_token_file: " + weak + ":1: a token"},
       }) {
    std::vector<std::string> argv = {RunfilePath("daemon/splitd"), "--listen=127.0.0.1:0"};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    auto result = RunCommand(argv, "", absl::Seconds(30));
    ASSERT_THAT(result, IsOk());
    EXPECT_EQ(result->exit_code, 2) << result->err;
    EXPECT_THAT(result->err, HasSubstr(c.message));
  }
  auto agent =
      RunCommand({RunfilePath("worker/splitd-agent"), "--daemon=127.0.0.1:1", "--cluster=x",
                  "--node=n", "--pod=p", "--nccl_library=", "--join_token_file=" + weak},
                 "", absl::Seconds(30));
  ASSERT_THAT(agent, IsOk());
  EXPECT_EQ(agent->exit_code, 2);
  EXPECT_THAT(agent->err, HasSubstr("--join_token_file: " + weak + ":1: a token"));
  CommandResult splitctl = [&] {
    auto result = RunCommand({RunfilePath("client/splitctl"), "--addr", "127.0.0.1:1",
                              "--token_file", weak, "get", "clusters"});
    return result.ok() ? *result : CommandResult{};
  }();
  EXPECT_EQ(splitctl.exit_code, 2);
  EXPECT_THAT(splitctl.err, HasSubstr("--token_file: " + weak + ":1: a token"));
}

}  // namespace
}  // namespace splitd
