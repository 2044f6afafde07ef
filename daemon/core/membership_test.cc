#include "daemon/core/membership.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "daemon/core/split_planner.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace splitd::core {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::HasSubstr;

// TP2 PP2 DP2 over two nodes of four.
constexpr char kTopology[] = R"pb(
  cluster: "demo"
  dims { name: "tp" size: 2 }
  dims { name: "pp" size: 2 }
  dims { name: "dp" size: 2 }
  nodes { gpus_per_node: 4 }
  groups { name: "tp" dims: "tp" local: "node" }
  groups { name: "pp" dims: "pp" }
  groups { name: "dp" dims: "dp" }
)pb";

std::shared_ptr<const SplitPlan> MakePlan(int64_t epoch, const char* text = kTopology) {
  v1::Topology topology;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &topology));
  absl::StatusOr<SplitPlan> plan = SplitPlanner::Build(topology, epoch);
  EXPECT_THAT(plan, IsOk());
  return std::make_shared<const SplitPlan>(*std::move(plan));
}

v1::MemberIdentity Identity(const std::string& node, int64_t local_index,
                            const std::string& incarnation) {
  v1::MemberIdentity identity;
  identity.set_cluster("demo");
  identity.set_pod(absl::StrCat("pod-", node, "-", local_index));
  identity.set_node(node);
  identity.set_host("127.0.0.1");
  identity.set_local_index(local_index);
  identity.set_incarnation(incarnation);
  return identity;
}

v1::Capabilities Gloo() {
  v1::Capabilities capabilities;
  capabilities.add_backends("cpu:gloo");
  capabilities.set_device_type("cpu");
  return capabilities;
}

class MembershipTest : public ::testing::Test {
 protected:
  MembershipTest() : membership_(MakePlan(1)) {}

  // Registers the 8 members out of order: node b first, indices descending.
  void RegisterWorld() {
    int n = 0;
    for (const std::string node : {"node-b", "node-a"}) {
      for (int index = 3; index >= 0; --index) {
        absl::StatusOr<Membership::Registration> registration = membership_.Register(
            Identity(node, index, absl::StrCat("inc-", node, index)), Gloo(), now_,
            absl::StrCat("token-", n++));
        ASSERT_THAT(registration, IsOk());
      }
    }
  }

  v1::MemberCredentials CredentialsOfRank(int64_t rank) const {
    v1::ClusterStatus status = membership_.Status();
    for (const v1::MemberStatus& member : status.members()) {
      if (member.rank() == rank) {
        v1::MemberCredentials credentials;
        credentials.set_cluster("demo");
        credentials.set_member_id(member.member_id());
        // Tokens were handed out in registration order: "m-<n>" got "token-<n>".
        credentials.set_session_token(
            absl::StrCat("token-", member.member_id().substr(2)));
        return credentials;
      }
    }
    ADD_FAILURE() << "no member holds rank " << rank;
    return {};
  }

  // A READY report of `rank` with a passing validation of every kind.
  v1::ReportGroupStatusRequest ReadyReport(int64_t rank) const {
    v1::ReportGroupStatusRequest request;
    *request.mutable_member() = CredentialsOfRank(rank);
    request.set_epoch(membership_.plan().epoch);
    request.set_rank(rank);
    request.set_fingerprint(membership_.plan().fingerprint);
    request.set_phase(v1::PHASE_READY);
    for (const char* kind : {"tp", "pp", "dp"}) {
      v1::GroupReport* group = request.add_groups();
      group->set_kind(kind);
      group->set_backend("cpu:gloo");
      group->set_phase(v1::PHASE_READY);
      group->set_allreduce_value(2);
      group->set_latency_us(100 + static_cast<double>(rank));
    }
    request.mutable_timings()->set_groups_ready_ms(12.5);
    return request;
  }

  absl::Time now_ = absl::FromUnixSeconds(1800000000);
  Membership membership_;
};

TEST_F(MembershipTest, PendingUntilTheWorldIsPresentThenRanksByNodeAndLocalIndex) {
  for (int index = 0; index < 7; ++index) {
    ASSERT_THAT(membership_.Register(Identity("node-x", 7 - index, absl::StrCat("i", index)),
                                     Gloo(), now_, "t"),
                IsOk());
    EXPECT_FALSE(membership_.assigned());
    EXPECT_EQ(membership_.phase(), v1::PHASE_PENDING);
  }
  ASSERT_THAT(membership_.Register(Identity("node-y", 0, "eighth"), Gloo(), now_, "t"), IsOk());
  EXPECT_TRUE(membership_.assigned());
  EXPECT_EQ(membership_.phase(), v1::PHASE_PLANNED);

  Membership ordered(MakePlan(1));
  std::vector<std::string> ids;
  for (const std::string node : {"node-b", "node-a"}) {
    for (int index = 3; index >= 0; --index) {
      absl::StatusOr<Membership::Registration> registration =
          ordered.Register(Identity(node, index, absl::StrCat(node, index)), Gloo(), now_, "t");
      ASSERT_THAT(registration, IsOk());
      EXPECT_EQ(registration->assigned, node == "node-a" && index == 0);
    }
  }
  EXPECT_EQ(ordered.phase(), v1::PHASE_PLANNED);
  const v1::ClusterStatus status = ordered.Status();
  ASSERT_EQ(status.members_size(), 8);
  for (int rank = 0; rank < 8; ++rank) {
    const v1::MemberStatus& member = status.members(rank);
    EXPECT_EQ(member.rank(), rank);
    EXPECT_EQ(member.node(), rank < 4 ? "node-a" : "node-b") << rank;
    EXPECT_EQ(member.local_index(), rank % 4) << rank;
    EXPECT_EQ(member.state(), v1::MEMBER_STATE_ACTIVE);
    EXPECT_EQ(member.phase(), v1::PHASE_PLANNED);
  }
}

TEST_F(MembershipTest, MembersBeyondTheWorldAreSpares) {
  RegisterWorld();
  absl::StatusOr<Membership::Registration> spare =
      membership_.Register(Identity("node-c", 0, "late"), Gloo(), now_, "token-8");
  ASSERT_THAT(spare, IsOk());
  EXPECT_EQ(spare->member->rank, -1);
  EXPECT_FALSE(spare->assigned);
  const v1::ClusterStatus status = membership_.Status();
  ASSERT_EQ(status.members_size(), 9);
  EXPECT_EQ(status.registered_members(), 9);
  EXPECT_EQ(status.members(8).rank(), -1);
  EXPECT_EQ(status.members(8).state(), v1::MEMBER_STATE_SPARE);

  v1::MemberCredentials credentials;
  credentials.set_member_id(spare->member->member_id);
  credentials.set_session_token("token-8");
  EXPECT_THAT(membership_.CheckRendezvous(credentials, 1),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("is a spare")));
}

TEST_F(MembershipTest, SameIncarnationGetsTheSameMemberAndRank) {
  RegisterWorld();
  absl::StatusOr<Membership::Registration> again =
      membership_.Register(Identity("node-a", 2, "inc-node-a2"), Gloo(), now_, "other");
  ASSERT_THAT(again, IsOk());
  EXPECT_TRUE(again->rejoined);
  EXPECT_EQ(again->member->rank, 2);
  EXPECT_NE(again->member->session_token, "other");
  EXPECT_EQ(membership_.member_count(), 8);
}

TEST_F(MembershipTest, MalformedIdentitiesNameTheField) {
  struct Case {
    std::string name;
    void (*mutate)(v1::MemberIdentity*);
    absl::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"no pod", [](v1::MemberIdentity* i) { i->clear_pod(); },
       absl::StatusCode::kInvalidArgument, "identity.pod must not be empty"},
      {"no node", [](v1::MemberIdentity* i) { i->clear_node(); },
       absl::StatusCode::kInvalidArgument, "identity.node must not be empty"},
      {"no host", [](v1::MemberIdentity* i) { i->clear_host(); },
       absl::StatusCode::kInvalidArgument, "identity.host must not be empty"},
      {"no incarnation", [](v1::MemberIdentity* i) { i->clear_incarnation(); },
       absl::StatusCode::kInvalidArgument, "identity.incarnation must not be empty"},
      {"negative index", [](v1::MemberIdentity* i) { i->set_local_index(-1); },
       absl::StatusCode::kInvalidArgument, "identity.local_index must be >= 0, got -1"},
      {"long pod", [](v1::MemberIdentity* i) { i->set_pod(std::string(300, 'p')); },
       absl::StatusCode::kInvalidArgument, "identity.pod must be at most 253 bytes"},
      {"other cluster", [](v1::MemberIdentity* i) { i->set_cluster("other"); },
       absl::StatusCode::kInvalidArgument, "identity.cluster \"other\""},
  };
  for (const Case& c : cases) {
    v1::MemberIdentity identity = Identity("node-a", 0, "x");
    c.mutate(&identity);
    EXPECT_THAT(membership_.Register(identity, Gloo(), now_, "t"),
                StatusIs(c.code, HasSubstr(c.message)))
        << c.name;
  }
  EXPECT_EQ(membership_.member_count(), 0);
}

TEST_F(MembershipTest, TwoIncarnationsCannotHoldOneDeviceSlot) {
  ASSERT_THAT(membership_.Register(Identity("node-a", 0, "first"), Gloo(), now_, "t"), IsOk());
  EXPECT_THAT(membership_.Register(Identity("node-a", 0, "second"), Gloo(), now_, "t"),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("node \"node-a\" local_index 0 is held by member m-0")));
}

TEST_F(MembershipTest, CredentialsAreChecked) {
  RegisterWorld();
  v1::MemberCredentials credentials = CredentialsOfRank(3);
  EXPECT_THAT(membership_.Authenticate(credentials), IsOk());
  credentials.set_session_token("token-wrong");
  EXPECT_THAT(membership_.Authenticate(credentials),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("session_token")));
  credentials.set_member_id("m-99");
  EXPECT_THAT(membership_.Authenticate(credentials),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"m-99\"")));
  credentials.clear_member_id();
  EXPECT_THAT(membership_.Authenticate(credentials),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("member.member_id")));
}

TEST_F(MembershipTest, ClusterIsReadyWhenEveryRankReportsPassingValidations) {
  RegisterWorld();
  for (int rank = 0; rank < 8; ++rank) {
    absl::StatusOr<v1::Phase> phase = membership_.Report(ReadyReport(rank), now_);
    ASSERT_THAT(phase, IsOk());
    EXPECT_EQ(*phase, rank < 7 ? v1::PHASE_PLANNED : v1::PHASE_READY) << rank;
  }
  const v1::ClusterStatus status = membership_.Status();
  EXPECT_EQ(status.state(), v1::PHASE_READY);
  ASSERT_EQ(status.groups_size(), 3);
  for (const v1::GroupKindStatus& kind : status.groups()) {
    EXPECT_EQ(kind.groups(), 4) << kind.kind();
    EXPECT_EQ(kind.ready(), 4) << kind.kind();
    EXPECT_EQ(kind.failed(), 0) << kind.kind();
    ASSERT_EQ(kind.validations_size(), 4);
    EXPECT_EQ(kind.validations(0).allreduce_value(), 2);
    EXPECT_EQ(kind.validations(0).phase(), v1::PHASE_READY);
  }
  // tp group 3 holds ranks 6 and 7: latencies 106 and 107, the upper median is reported.
  EXPECT_EQ(status.groups(0).validations(3).latency_us(), 107);
  EXPECT_EQ(status.groups(0).max_latency_us(), 107);
  EXPECT_EQ(status.members(5).timings().groups_ready_ms(), 12.5);
}

TEST_F(MembershipTest, TheEpochIsAsFarAsItsSlowestRank) {
  RegisterWorld();
  for (int rank = 0; rank < 8; ++rank) {
    v1::ReportGroupStatusRequest request = ReadyReport(rank);
    request.clear_groups();
    request.set_phase(rank == 4 ? v1::PHASE_BOOTSTRAPPING : v1::PHASE_VALIDATING);
    ASSERT_THAT(membership_.Report(request, now_), IsOk());
  }
  EXPECT_EQ(membership_.phase(), v1::PHASE_BOOTSTRAPPING);
}

TEST_F(MembershipTest, LateProgressReportsDoNotMoveARankBack) {
  RegisterWorld();
  ASSERT_THAT(membership_.Report(ReadyReport(3), now_), IsOk());
  v1::ReportGroupStatusRequest late = ReadyReport(3);
  late.set_phase(v1::PHASE_SPLITTING);
  for (v1::GroupReport& group : *late.mutable_groups()) group.set_phase(v1::PHASE_SPLITTING);
  ASSERT_THAT(membership_.Report(late, now_), IsOk());
  const v1::ClusterStatus status = membership_.Status();
  EXPECT_EQ(status.members(3).phase(), v1::PHASE_READY);
  // tp group 1 holds ranks 2 and 3; only rank 3 reported, and its READY report stands.
  ASSERT_EQ(status.groups(0).validations_size(), 1);
  EXPECT_EQ(status.groups(0).validations(0).group_index(), 1);
  EXPECT_EQ(status.groups(0).validations(0).phase(), v1::PHASE_VALIDATING);
  EXPECT_EQ(status.groups(0).validations(0).allreduce_value(), 2);
}

TEST_F(MembershipTest, FailedValidationFailsTheClusterWithTheRankInTheReason) {
  RegisterWorld();
  v1::ReportGroupStatusRequest request = ReadyReport(5);
  request.set_phase(v1::PHASE_FAILED);
  request.mutable_groups(1)->set_phase(v1::PHASE_FAILED);
  request.mutable_groups(1)->set_error("timed out");
  ASSERT_THAT(membership_.Report(request, now_), IsOk());
  const v1::ClusterStatus status = membership_.Status();
  EXPECT_EQ(status.state(), v1::PHASE_FAILED);
  EXPECT_THAT(status.reason(), HasSubstr("rank 5 group pp[3] (cpu:gloo): timed out"));
  EXPECT_EQ(status.groups(1).failed(), 1);
  EXPECT_EQ(status.members(5).phase(), v1::PHASE_FAILED);
}

TEST_F(MembershipTest, WrongAllreduceValueFailsTheRank) {
  RegisterWorld();
  v1::ReportGroupStatusRequest request = ReadyReport(2);
  request.mutable_groups(2)->set_allreduce_value(1);
  ASSERT_THAT(membership_.Report(request, now_), IsOk());
  EXPECT_EQ(membership_.phase(), v1::PHASE_FAILED);
  EXPECT_THAT(membership_.reason(),
              HasSubstr("rank 2 group dp[2] (cpu:gloo): all-reduce of ones gave 1"));
}

TEST_F(MembershipTest, FingerprintMismatchFailsTheClusterNamingTheRank) {
  RegisterWorld();
  v1::ReportGroupStatusRequest request = ReadyReport(6);
  request.set_phase(v1::PHASE_BOOTSTRAPPING);
  request.clear_groups();
  request.set_fingerprint(std::string(64, 'f'));
  ASSERT_THAT(membership_.Report(request, now_), IsOk());
  EXPECT_EQ(membership_.phase(), v1::PHASE_FAILED);
  EXPECT_THAT(membership_.reason(), HasSubstr("rank 6"));
  EXPECT_THAT(membership_.reason(), HasSubstr("fingerprint ffffffffffff"));
}

TEST_F(MembershipTest, ReportsAreRefusedForOldEpochsAndOtherRanks) {
  RegisterWorld();
  const v1::ReportGroupStatusRequest old = ReadyReport(1);
  membership_.StartEpoch(MakePlan(2), absl::UnixEpoch());
  EXPECT_TRUE(membership_.assigned());
  EXPECT_THAT(membership_.Report(old, now_),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("epoch 1 is over")));

  v1::ReportGroupStatusRequest other = ReadyReport(1);
  other.set_rank(2);
  EXPECT_THAT(membership_.Report(other, now_),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("not rank 2")));

  v1::ReportGroupStatusRequest incomplete = ReadyReport(1);
  incomplete.mutable_groups()->RemoveLast();
  EXPECT_THAT(membership_.Report(incomplete, now_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("kind dp of rank 1")));

  v1::ReportGroupStatusRequest unknown = ReadyReport(1);
  unknown.mutable_groups(0)->set_kind("xp");
  EXPECT_THAT(membership_.Report(unknown, now_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("groups[0].kind \"xp\"")));

  v1::ReportGroupStatusRequest backend = ReadyReport(1);
  backend.mutable_groups(0)->set_backend("cuda:nccl");
  EXPECT_THAT(membership_.Report(backend, now_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("groups[0].backend")));

  v1::ReportGroupStatusRequest no_phase = ReadyReport(1);
  no_phase.set_phase(v1::PHASE_PENDING);
  EXPECT_THAT(membership_.Report(no_phase, now_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("phase must be one of")));
  // Nothing of the refused reports was recorded.
  EXPECT_EQ(membership_.phase(), v1::PHASE_PLANNED);
  EXPECT_EQ(membership_.Status().members(1).phase(), v1::PHASE_PLANNED);
}

TEST_F(MembershipTest, NewEpochKeepsMembersAndResetsReports) {
  RegisterWorld();
  for (int rank = 0; rank < 8; ++rank) ASSERT_THAT(membership_.Report(ReadyReport(rank), now_), IsOk());
  ASSERT_EQ(membership_.phase(), v1::PHASE_READY);
  membership_.StartEpoch(MakePlan(2), absl::UnixEpoch());
  EXPECT_EQ(membership_.phase(), v1::PHASE_PLANNED);
  EXPECT_EQ(membership_.Status().epoch(), 2);
  EXPECT_EQ(membership_.Status().groups(0).ready(), 0);
  EXPECT_THAT(membership_.Report(ReadyReport(0), now_), IsOk());
}

}  // namespace
}  // namespace splitd::core
