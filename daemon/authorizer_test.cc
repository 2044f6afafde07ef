#include "daemon/authorizer.h"

#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status_matchers.h"
#include "daemon/coordinator.h"
#include "daemon/store/memory_state_store.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "splitd/v1/agent_service.pb.h"
#include "splitd/v1/control_service.pb.h"
#include "tests/testing/coordinator_calls.h"
#include "tests/testing/fake_clock.h"

namespace splitd::daemon {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kAdmin[] = "admin-token-0123456789";
constexpr char kAdminNext[] = "admin-token-next-0123456789";
constexpr char kObserver[] = "observer-token-0123456789";

std::string WriteFile(const std::string& name, const std::string& contents) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::trunc) << contents;
  return path;
}

TEST(AuthorizerTest, WithoutAnAdminTokenFileNothingIsRequired) {
  FakeClock clock;
  auto authorizer = Authorizer::Create({}, &clock);
  ASSERT_TRUE(authorizer.ok()) << authorizer.status();
  EXPECT_FALSE((*authorizer)->enabled());
  EXPECT_EQ((*authorizer)->RoleOf(kAdmin), ControlRole::kNone);
}

TEST(AuthorizerTest, TellsAdminObserverAndUnknownTokensApart) {
  FakeClock clock;
  Authorizer::Options options;
  options.admin_token_file = WriteFile("roles_admin", std::string(kAdmin) + "\n");
  options.observer_token_file = WriteFile("roles_observer", std::string(kObserver) + "\n");
  auto authorizer = Authorizer::Create(options, &clock);
  ASSERT_TRUE(authorizer.ok()) << authorizer.status();
  EXPECT_TRUE((*authorizer)->enabled());
  EXPECT_EQ((*authorizer)->RoleOf(kAdmin), ControlRole::kAdmin);
  EXPECT_EQ((*authorizer)->RoleOf(kObserver), ControlRole::kObserver);
  EXPECT_EQ((*authorizer)->RoleOf("someone-elses-token-012345"), ControlRole::kNone);
  EXPECT_EQ((*authorizer)->RoleOf(""), ControlRole::kNone);
  EXPECT_EQ((*authorizer)->RoleOf(std::string(kAdmin) + "x"), ControlRole::kNone);
}

TEST(AuthorizerTest, RefusesBadFilesNamingTheFlag) {
  FakeClock clock;
  Authorizer::Options observer_only;
  observer_only.observer_token_file = WriteFile("observer_only", std::string(kObserver) + "\n");
  EXPECT_THAT(Authorizer::Create(observer_only, &clock),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--observer_token_file needs --admin_token_file")));

  Authorizer::Options missing;
  missing.admin_token_file = ::testing::TempDir() + "/no_such_token_file";
  EXPECT_THAT(
      Authorizer::Create(missing, &clock),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--admin_token_file: cannot read")));

  Authorizer::Options weak;
  weak.admin_token_file = WriteFile("weak_admin", "short\n");
  EXPECT_THAT(Authorizer::Create(weak, &clock),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--admin_token_file: " + weak.admin_token_file + ":1: a token")));
}

TEST(TokenFileTest, PicksUpARotationAfterTheRecheckIntervalAndKeepsTokensOnABadEdit) {
  FakeClock clock;
  const std::string path = WriteFile("rotating", std::string(kAdmin) + "\n");
  auto file = TokenFile::Load(path, "admin_token_file", &clock, absl::Seconds(1));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE((*file)->Contains(kAdmin));

  // Rotation: the new token is added, then the old one removed.
  WriteFile("rotating",
            std::string(kAdminNext) + "\n# the old one, until clients move\n" + kAdmin + "\n");
  EXPECT_FALSE((*file)->Contains(kAdminNext)) << "looked at again before the interval";
  clock.Advance(absl::Seconds(1));
  EXPECT_TRUE((*file)->Contains(kAdminNext));
  EXPECT_TRUE((*file)->Contains(kAdmin));

  WriteFile("rotating", std::string(kAdminNext) + "\n");
  clock.Advance(absl::Seconds(1));
  EXPECT_TRUE((*file)->Contains(kAdminNext));
  EXPECT_FALSE((*file)->Contains(kAdmin));

  // A broken edit (no token left) does not lock everyone out, nor does a removed file.
  WriteFile("rotating", "# emptied by mistake, longer than before to change the size\n");
  clock.Advance(absl::Seconds(1));
  EXPECT_TRUE((*file)->Contains(kAdminNext));
  std::remove(path.c_str());
  clock.Advance(absl::Seconds(1));
  EXPECT_TRUE((*file)->Contains(kAdminNext));
}

TEST(AuthorizerScopeTest, EveryMethodOfBothServicesHasARule) {
  const google::protobuf::DescriptorPool* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const char* name : {"splitd.v1.ControlService", "splitd.v1.AgentService"}) {
    const google::protobuf::ServiceDescriptor* service = pool->FindServiceByName(name);
    ASSERT_NE(service, nullptr) << name;
    for (int i = 0; i < service->method_count(); ++i) {
      EXPECT_THAT(Authorizer::ScopeOf(name, service->method(i)->name(), /*dry_run=*/false), IsOk())
          << name << "." << service->method(i)->name();
    }
  }
  EXPECT_THAT(Authorizer::ScopeOf("splitd.v1.ControlService", "NoSuchMethod", false),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("no authorization rule for ControlService.NoSuchMethod")));
}

TEST(AuthorizerScopeTest, ReconfigureIsAReadOnlyAsADryRun) {
  EXPECT_EQ(*Authorizer::ScopeOf("splitd.v1.ControlService", "Reconfigure", false),
            Scope::kControlChange);
  EXPECT_EQ(*Authorizer::ScopeOf("splitd.v1.ControlService", "Reconfigure", true),
            Scope::kControlRead);
  EXPECT_EQ(*Authorizer::ScopeOf("splitd.v1.ControlService", "ApplyTopology", true),
            Scope::kControlChange);
  EXPECT_EQ(*Authorizer::ScopeOf("splitd.v1.AgentService", "Register", false), Scope::kJoin);
  EXPECT_EQ(*Authorizer::ScopeOf("splitd.v1.AgentService", "KvGet", false), Scope::kSession);
}

constexpr char kJoinAlpha[] = "join-alpha-0123456789abcdef";
constexpr char kJoinBeta[] = "join-beta-0123456789abcdef";
constexpr char kWrong[] = "wrong-token-0123456789abcdef";

// An Authorizer over a real Coordinator with clusters "alpha" and "beta", each with its join
// token, and one member of alpha.
class AuthorizerCallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(coordinator_.Recover(), IsOk());
    for (const auto& [cluster, token] :
         {std::pair<std::string, std::string>{"alpha", kJoinAlpha}, {"beta", kJoinBeta}}) {
      Coordinator::JoinToken join;
      join.token = token;
      join.required = true;
      ASSERT_THAT(
          coordinator_.ApplyTopology(splitd::testing::MeshTopology(cluster, {{"tp", 2}}), join),
          IsOk());
    }
    auto member = splitd::testing::RegisterMember(coordinator_,
                                                  splitd::testing::AgentRegistration("alpha", 0));
    ASSERT_THAT(member, IsOk());
    session_ = member->session_token();
  }

  std::unique_ptr<Authorizer> Make(bool with_tokens) {
    Authorizer::Options options;
    if (with_tokens) {
      options.admin_token_file = WriteFile("calls_admin", std::string(kAdmin) + "\n");
      options.observer_token_file = WriteFile("calls_observer", std::string(kObserver) + "\n");
    }
    auto authorizer = Authorizer::Create(options, &clock_, &coordinator_);
    EXPECT_THAT(authorizer, IsOk());
    return authorizer.ok() ? *std::move(authorizer) : nullptr;
  }

  static Authorizer::Call Control(const char* method, std::optional<std::string> token,
                                  bool dry_run = false) {
    Authorizer::Call call;
    call.service = "splitd.v1.ControlService";
    call.method = method;
    call.token = std::move(token);
    call.dry_run = dry_run;
    return call;
  }

  static Authorizer::Call Agent(const char* method, std::optional<std::string> token,
                                std::string cluster = "") {
    Authorizer::Call call;
    call.service = "splitd.v1.AgentService";
    call.method = method;
    call.token = std::move(token);
    call.cluster = std::move(cluster);
    return call;
  }

  store::MemoryStateStore store_;
  FakeClock clock_;
  Coordinator coordinator_{&store_, &clock_};
  std::string session_;
};

TEST_F(AuthorizerCallTest, ControlCallsNeedATokenOfTheirScope) {
  std::unique_ptr<Authorizer> authorizer = Make(/*with_tokens=*/true);
  ASSERT_NE(authorizer, nullptr);
  const absl::StatusCode kUnauthenticated = absl::StatusCode::kUnauthenticated;
  const absl::StatusCode kDenied = absl::StatusCode::kPermissionDenied;
  struct Case {
    std::string label;
    Authorizer::Call call;
    absl::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"no header", Control("ListClusters", std::nullopt), kUnauthenticated,
       "ControlService.ListClusters needs a token"},
      {"not a bearer header", Control("GetPlan", ""), kUnauthenticated,
       "the token is not valid for ControlService.GetPlan"},
      {"an unknown token", Control("GetStatus", kWrong), kUnauthenticated,
       "the token is not valid for ControlService.GetStatus"},
      {"a join token", Control("GetCluster", kJoinAlpha), kDenied, "refuses agent tokens"},
      {"a session token", Control("WatchEvents", session_), kDenied, "refuses agent tokens"},
      {"the observer token for a change", Control("DeleteCluster", kObserver), kDenied,
       "ControlService.DeleteCluster changes state; the observer token may only read"},
      {"the observer token for a reconfiguration", Control("Reconfigure", kObserver), kDenied,
       "observer token may only read"},
      {"the observer token for a read", Control("ListClusters", kObserver), absl::StatusCode::kOk,
       ""},
      {"the observer token for a dry run", Control("Reconfigure", kObserver, /*dry_run=*/true),
       absl::StatusCode::kOk, ""},
      {"the admin token for a change", Control("ApplyTopology", kAdmin), absl::StatusCode::kOk, ""},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(authorizer->Authorize(c.call), StatusIs(c.code, HasSubstr(c.message))) << c.label;
  }
}

TEST_F(AuthorizerCallTest, RegisterNeedsTheClustersOwnJoinToken) {
  std::unique_ptr<Authorizer> authorizer = Make(/*with_tokens=*/true);
  ASSERT_NE(authorizer, nullptr);
  EXPECT_THAT(authorizer->Authorize(Agent("Register", kJoinAlpha, "alpha")), IsOk());
  EXPECT_THAT(authorizer->Authorize(Agent("Register", std::nullopt, "alpha")),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("needs its join token")));
  EXPECT_THAT(authorizer->Authorize(Agent("Register", kWrong, "alpha")),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("not valid")));
  EXPECT_THAT(authorizer->Authorize(Agent("Register", kJoinBeta, "alpha")),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("another cluster")));
  EXPECT_THAT(authorizer->Authorize(Agent("Register", session_, "beta")),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("member's session")));
  for (const char* control : {kAdmin, kObserver}) {
    EXPECT_THAT(authorizer->Authorize(Agent("Register", control, "alpha")),
                StatusIs(absl::StatusCode::kPermissionDenied,
                         HasSubstr("Register refuses control tokens")));
  }
  EXPECT_THAT(authorizer->Authorize(Agent("Register", kJoinAlpha, "gamma")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("gamma")));
}

TEST_F(AuthorizerCallTest, MemberCallsAreLeftToTheCoordinatorsSessionCheck) {
  std::unique_ptr<Authorizer> authorizer = Make(/*with_tokens=*/true);
  ASSERT_NE(authorizer, nullptr);
  for (const char* method : {"WatchPlan", "Heartbeat", "ReportGroupStatus", "KvSet", "KvGet",
                             "KvAdd", "KvCompareSet", "KvCheck", "KvDelete"}) {
    EXPECT_THAT(authorizer->Authorize(Agent(method, std::nullopt)), IsOk()) << method;
  }
}

TEST_F(AuthorizerCallTest, WithoutTokenFilesControlIsOpenAndJoinTokensStillCount) {
  std::unique_ptr<Authorizer> authorizer = Make(/*with_tokens=*/false);
  ASSERT_NE(authorizer, nullptr);
  EXPECT_FALSE(authorizer->JoinTokenRequired());
  EXPECT_THAT(authorizer->Authorize(Control("DeleteCluster", std::nullopt)), IsOk());
  EXPECT_THAT(authorizer->Authorize(Control("ApplyTopology", kWrong)), IsOk());
  EXPECT_THAT(authorizer->Authorize(Agent("Register", kJoinAlpha, "alpha")), IsOk());
  EXPECT_THAT(authorizer->Authorize(Agent("Register", kWrong, "alpha")),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("not valid")));
}

TEST(AuthorizerWithoutCoordinatorTest, RefusesRegisterItCannotDecide) {
  FakeClock clock;
  auto authorizer = Authorizer::Create({}, &clock);
  ASSERT_TRUE(authorizer.ok()) << authorizer.status();
  Authorizer::Call call;
  call.service = "splitd.v1.AgentService";
  call.method = "Register";
  call.cluster = "alpha";
  EXPECT_THAT(
      (*authorizer)->Authorize(call),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("AgentService.Register is refused")));
}

}  // namespace
}  // namespace splitd::daemon
