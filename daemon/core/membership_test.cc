#include "daemon/core/membership.h"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "plan/split_planner.h"

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

std::shared_ptr<const plan::SplitPlan> MakePlan(int64_t epoch, const char* text = kTopology) {
  v1::Topology topology;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &topology));
  absl::StatusOr<plan::SplitPlan> plan = plan::SplitPlanner::Build(topology, epoch);
  EXPECT_THAT(plan, IsOk());
  return std::make_shared<const plan::SplitPlan>(*std::move(plan));
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
        absl::StatusOr<Membership::Registration> registration =
            membership_.Register(Identity(node, index, absl::StrCat("inc-", node, index)), Gloo(),
                                 now_, absl::StrCat("token-", n++));
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
        credentials.set_session_token(absl::StrCat("token-", member.member_id().substr(2)));
        return credentials;
      }
    }
    ADD_FAILURE() << "no member holds rank " << rank;
    return {};
  }

  // A report of `rank` in `phase` for the current plan, sent with the rank's credentials.
  RankReport ReportOfRank(int64_t rank, v1::Phase phase) const {
    const v1::MemberCredentials credentials = CredentialsOfRank(rank);
    RankReport report;
    report.member_id = credentials.member_id();
    report.session_token = credentials.session_token();
    report.epoch = membership_.plan().epoch;
    report.rank = rank;
    report.fingerprint = membership_.plan().fingerprint;
    report.phase = phase;
    return report;
  }

  // A READY report of `rank` with a passing validation of every kind.
  RankReport ReadyReport(int64_t rank) const {
    RankReport report = ReportOfRank(rank, v1::PHASE_READY);
    for (const char* kind : {"tp", "pp", "dp"}) {
      RankReport::Group& group = report.groups.emplace_back();
      group.kind = kind;
      group.backend = "cpu:gloo";
      group.phase = v1::PHASE_READY;
      group.allreduce_value = 2;
      group.latency_us = 100 + static_cast<double>(rank);
    }
    report.timings.groups_ready_ms = 12.5;
    return report;
  }

  // A workload-layer report of `rank` in `phase`, without groups.
  RankReport WorkloadReport(int64_t rank, v1::Phase phase, const std::string& detail = "") const {
    RankReport report = ReportOfRank(rank, phase);
    report.layer = v1::REPORT_LAYER_WORKLOAD;
    report.detail = detail;
    return report;
  }

  // Every agent READY at `at`.
  void AllAgentsReady(absl::Time at) {
    for (int rank = 0; rank < 8; ++rank) {
      ASSERT_THAT(membership_.Report(ReadyReport(rank), at), IsOk());
    }
  }

  absl::Time now_ = absl::FromUnixSeconds(1800000000);
  Membership membership_;
};

std::string WithReadiness(const std::string& readiness) {
  return absl::StrCat(kTopology, "readiness: \"", readiness, "\"");
}

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

TEST_F(MembershipTest, ALeaseCheckIsDueOnlyWhenSomethingCouldHaveExpired) {
  const absl::Duration lease = absl::Seconds(10);
  const absl::Duration grace = absl::Seconds(1);
  RegisterWorld();
  EXPECT_TRUE(membership_.LeaseCheckDue(now_, lease, grace));  // never scanned
  EXPECT_TRUE(membership_.ExpireLeases(now_ + absl::Seconds(2), lease, grace).empty());
  // Every member registered at now_: nobody can be lost before now_ + 10 s.
  EXPECT_FALSE(membership_.LeaseCheckDue(now_ + absl::Seconds(10), lease, grace));
  EXPECT_TRUE(
      membership_.LeaseCheckDue(now_ + absl::Seconds(10) + absl::Nanoseconds(1), lease, grace));
  // Other parameters, a closed stream or a new member make it due at once.
  EXPECT_TRUE(membership_.LeaseCheckDue(now_ + absl::Seconds(3), absl::Seconds(5), grace));
  const v1::MemberCredentials rank0 = CredentialsOfRank(0);
  membership_.PlanStreamOpened(rank0.member_id());
  EXPECT_FALSE(membership_.LeaseCheckDue(now_ + absl::Seconds(3), lease, grace));
  membership_.PlanStreamClosed(rank0.member_id(), now_ + absl::Seconds(3));
  EXPECT_TRUE(membership_.LeaseCheckDue(now_ + absl::Seconds(3), lease, grace));
  EXPECT_TRUE(membership_.ExpireLeases(now_ + absl::Seconds(3), lease, grace).empty());
  EXPECT_FALSE(membership_.LeaseCheckDue(now_ + absl::Seconds(4), lease, grace));
  EXPECT_TRUE(membership_.LeaseCheckDue(now_ + absl::Seconds(4) + absl::Nanoseconds(1), lease,
                                        grace));  // the grace ran out
  ASSERT_THAT(membership_.Register(Identity("node-c", 0, "late"), Gloo(), now_, "token-8"), IsOk());
  EXPECT_TRUE(membership_.LeaseCheckDue(now_ + absl::Seconds(3), lease, grace));
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
      {"no pod", [](v1::MemberIdentity* i) { i->clear_pod(); }, absl::StatusCode::kInvalidArgument,
       "identity.pod must not be empty"},
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
    RankReport report = ReadyReport(rank);
    report.groups.clear();
    report.phase = rank == 4 ? v1::PHASE_BOOTSTRAPPING : v1::PHASE_VALIDATING;
    ASSERT_THAT(membership_.Report(report, now_), IsOk());
  }
  EXPECT_EQ(membership_.phase(), v1::PHASE_BOOTSTRAPPING);
}

TEST_F(MembershipTest, LateProgressReportsDoNotMoveARankBack) {
  RegisterWorld();
  ASSERT_THAT(membership_.Report(ReadyReport(3), now_), IsOk());
  RankReport late = ReadyReport(3);
  late.phase = v1::PHASE_SPLITTING;
  for (RankReport::Group& group : late.groups) group.phase = v1::PHASE_SPLITTING;
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
  RankReport report = ReadyReport(5);
  report.phase = v1::PHASE_FAILED;
  report.groups[1].phase = v1::PHASE_FAILED;
  report.groups[1].error = "timed out";
  ASSERT_THAT(membership_.Report(report, now_), IsOk());
  const v1::ClusterStatus status = membership_.Status();
  EXPECT_EQ(status.state(), v1::PHASE_FAILED);
  EXPECT_THAT(status.reason(), HasSubstr("rank 5 group pp[3] (cpu:gloo): timed out"));
  EXPECT_EQ(status.groups(1).failed(), 1);
  EXPECT_EQ(status.members(5).phase(), v1::PHASE_FAILED);
}

TEST_F(MembershipTest, WrongAllreduceValueFailsTheRank) {
  RegisterWorld();
  RankReport report = ReadyReport(2);
  report.groups[2].allreduce_value = 1;
  ASSERT_THAT(membership_.Report(report, now_), IsOk());
  EXPECT_EQ(membership_.phase(), v1::PHASE_FAILED);
  EXPECT_THAT(membership_.reason(),
              HasSubstr("rank 2 group dp[2] (cpu:gloo): all-reduce of ones gave 1"));
}

TEST_F(MembershipTest, FingerprintMismatchFailsTheClusterNamingTheRank) {
  RegisterWorld();
  RankReport report = ReadyReport(6);
  report.phase = v1::PHASE_BOOTSTRAPPING;
  report.groups.clear();
  report.fingerprint = std::string(64, 'f');
  ASSERT_THAT(membership_.Report(report, now_), IsOk());
  EXPECT_EQ(membership_.phase(), v1::PHASE_FAILED);
  EXPECT_THAT(membership_.reason(), HasSubstr("rank 6"));
  EXPECT_THAT(membership_.reason(), HasSubstr("fingerprint ffffffffffff"));
}

TEST_F(MembershipTest, ReportsAreRefusedForOldEpochsAndOtherRanks) {
  RegisterWorld();
  const RankReport old = ReadyReport(1);
  membership_.StartEpoch(MakePlan(2), absl::UnixEpoch());
  EXPECT_TRUE(membership_.assigned());
  EXPECT_THAT(membership_.Report(old, now_),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("epoch 1 is over")));

  RankReport other = ReadyReport(1);
  other.rank = 2;
  EXPECT_THAT(membership_.Report(other, now_),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("not rank 2")));

  RankReport incomplete = ReadyReport(1);
  incomplete.groups.pop_back();
  EXPECT_THAT(membership_.Report(incomplete, now_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("kind dp of rank 1")));

  RankReport unknown = ReadyReport(1);
  unknown.groups[0].kind = "xp";
  EXPECT_THAT(membership_.Report(unknown, now_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("groups[0].kind \"xp\"")));

  RankReport backend = ReadyReport(1);
  backend.groups[0].backend = "cuda:nccl";
  EXPECT_THAT(membership_.Report(backend, now_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("groups[0].backend")));

  RankReport no_phase = ReadyReport(1);
  no_phase.phase = v1::PHASE_PENDING;
  EXPECT_THAT(membership_.Report(no_phase, now_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("phase must be one of")));
  // Nothing of the refused reports was recorded.
  EXPECT_EQ(membership_.phase(), v1::PHASE_PLANNED);
  EXPECT_EQ(membership_.Status().members(1).phase(), v1::PHASE_PLANNED);
}

TEST_F(MembershipTest, NewEpochKeepsMembersAndResetsReports) {
  RegisterWorld();
  for (int rank = 0; rank < 8; ++rank)
    ASSERT_THAT(membership_.Report(ReadyReport(rank), now_), IsOk());
  ASSERT_EQ(membership_.phase(), v1::PHASE_READY);
  membership_.StartEpoch(MakePlan(2), absl::UnixEpoch());
  EXPECT_EQ(membership_.phase(), v1::PHASE_PLANNED);
  EXPECT_EQ(membership_.Status().epoch(), 2);
  EXPECT_EQ(membership_.Status().groups(0).ready(), 0);
  EXPECT_THAT(membership_.Report(ReadyReport(0), now_), IsOk());
}

}  // namespace
}  // namespace splitd::core

namespace splitd::core {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::HasSubstr;

TEST_F(MembershipTest, PhaseSinceIsTheAssignmentForPlannedAndEachReportedPhaseStart) {
  RegisterWorld();
  v1::ClusterStatus status = membership_.Status();
  EXPECT_EQ(status.members(4).phase_since().seconds(), 1800000000);
  EXPECT_EQ(status.readiness(), "agent");
  EXPECT_EQ(status.workload_state(), v1::PHASE_UNSPECIFIED);

  RankReport splitting = ReadyReport(4);
  splitting.groups.clear();
  splitting.phase = v1::PHASE_SPLITTING;
  ASSERT_THAT(membership_.Report(splitting, now_ + absl::Seconds(7)), IsOk());
  ASSERT_THAT(membership_.Report(splitting, now_ + absl::Seconds(9)), IsOk());
  status = membership_.Status();
  EXPECT_EQ(status.members(4).phase(), v1::PHASE_SPLITTING);
  EXPECT_EQ(status.members(4).phase_since().seconds(), 1800000007);
  EXPECT_FALSE(status.members(4).has_workload());
}

TEST_F(MembershipTest, WithAgentReadinessWorkloadReportsAreShownButDecideNothing) {
  RegisterWorld();
  AllAgentsReady(now_);
  ASSERT_EQ(membership_.phase(), v1::PHASE_READY);
  ASSERT_THAT(membership_.Report(WorkloadReport(3, v1::PHASE_SPLITTING, "creating tp"), now_),
              IsOk());
  RankReport failed = WorkloadReport(5, v1::PHASE_FAILED);
  failed.error = "CUDA out of memory";
  absl::StatusOr<v1::Phase> phase = membership_.Report(failed, now_);
  ASSERT_THAT(phase, IsOk());
  EXPECT_EQ(*phase, v1::PHASE_READY);
  const v1::ClusterStatus status = membership_.Status();
  EXPECT_EQ(status.state(), v1::PHASE_READY);
  EXPECT_EQ(status.reason(), "");
  EXPECT_EQ(status.workload_state(), v1::PHASE_FAILED);
  EXPECT_EQ(status.members(3).workload().phase(), v1::PHASE_SPLITTING);
  EXPECT_EQ(status.members(3).workload().reason(), "creating tp");
  EXPECT_EQ(status.members(5).workload().reason(), "rank 5 workload: CUDA out of memory");
  EXPECT_FALSE(status.members(0).has_workload());
  // The kinds' figures stay the agents'.
  EXPECT_EQ(status.groups(0).ready(), 4);
}

class WorkloadReadinessTest : public MembershipTest {
 protected:
  WorkloadReadinessTest() { membership_.StartEpoch(MakePlan(1, kWorkloadTopology.c_str()), now_); }
  const std::string kWorkloadTopology = WithReadiness("workload");
};

TEST_F(WorkloadReadinessTest, ReadyOnlyOnceEveryAgentAndEveryWorkloadIs) {
  RegisterWorld();
  AllAgentsReady(now_ + absl::Seconds(1));
  EXPECT_EQ(membership_.phase(), v1::PHASE_VALIDATING);
  EXPECT_EQ(membership_.Status().readiness(), "workload");
  for (int rank = 0; rank < 8; ++rank) {
    RankReport ready = WorkloadReport(rank, v1::PHASE_READY);
    RankReport::Group& group = ready.groups.emplace_back();
    group.kind = "dp";
    group.phase = v1::PHASE_READY;
    group.allreduce_value = 2;
    group.latency_us = 80;
    absl::StatusOr<v1::Phase> phase = membership_.Report(ready, now_ + absl::Seconds(3));
    ASSERT_THAT(phase, IsOk());
    EXPECT_EQ(*phase, rank < 7 ? v1::PHASE_VALIDATING : v1::PHASE_READY) << rank;
  }
  const v1::ClusterStatus status = membership_.Status();
  EXPECT_EQ(status.workload_state(), v1::PHASE_READY);
  EXPECT_EQ(status.timings().ready_ms(), 3000);
  ASSERT_EQ(status.members(6).workload().groups_size(), 1);
  EXPECT_EQ(status.members(6).workload().groups(0).kind(), "dp");
  EXPECT_EQ(status.members(6).workload().groups(0).latency_us(), 80);

  // A workload restarting after READY shows in its layer; the epoch stays READY.
  ASSERT_THAT(membership_.Report(WorkloadReport(6, v1::PHASE_BOOTSTRAPPING), now_), IsOk());
  EXPECT_EQ(membership_.phase(), v1::PHASE_READY);
  EXPECT_EQ(membership_.Status().workload_state(), v1::PHASE_BOOTSTRAPPING);
}

TEST_F(WorkloadReadinessTest, AWorkloadFailureFailsTheEpochForGoodNamingTheRank) {
  RegisterWorld();
  AllAgentsReady(now_);
  RankReport failed = WorkloadReport(3, v1::PHASE_FAILED);
  failed.error = "new_group timed out";
  absl::StatusOr<v1::Phase> phase = membership_.Report(failed, now_);
  ASSERT_THAT(phase, IsOk());
  EXPECT_EQ(*phase, v1::PHASE_FAILED);
  EXPECT_EQ(membership_.reason(), "rank 3 workload: new_group timed out");

  // The workload restarts within the epoch: its rank starts over, the epoch stays FAILED.
  ASSERT_THAT(membership_.Report(WorkloadReport(3, v1::PHASE_BOOTSTRAPPING), now_), IsOk());
  const v1::ClusterStatus status = membership_.Status();
  EXPECT_EQ(status.state(), v1::PHASE_FAILED);
  EXPECT_EQ(status.reason(), "rank 3 workload: new_group timed out");
  EXPECT_EQ(status.members(3).workload().phase(), v1::PHASE_BOOTSTRAPPING);
}

TEST_F(WorkloadReadinessTest, WorkloadReportsGetTheAgentsChecks) {
  RegisterWorld();
  const RankReport old = WorkloadReport(1, v1::PHASE_SPLITTING);
  RankReport other_rank = WorkloadReport(1, v1::PHASE_SPLITTING);
  other_rank.rank = 2;
  EXPECT_THAT(membership_.Report(other_rank, now_),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("not rank 2")));
  RankReport unknown_kind = WorkloadReport(1, v1::PHASE_SPLITTING);
  unknown_kind.groups.emplace_back().kind = "xp";
  EXPECT_THAT(membership_.Report(unknown_kind, now_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("groups[0].kind \"xp\"")));
  RankReport bad_layer = WorkloadReport(1, v1::PHASE_SPLITTING);
  bad_layer.layer = static_cast<v1::ReportLayer>(7);
  EXPECT_THAT(membership_.Report(bad_layer, now_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("layer must be")));
  EXPECT_THAT(membership_.CheckReport(WorkloadReport(1, v1::PHASE_PLANNED)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("phase must be one of")));
  EXPECT_FALSE(membership_.Status().members(1).has_workload());

  RankReport mismatch = WorkloadReport(6, v1::PHASE_BOOTSTRAPPING);
  mismatch.fingerprint = std::string(64, 'a');
  ASSERT_THAT(membership_.Report(mismatch, now_), IsOk());
  EXPECT_EQ(membership_.phase(), v1::PHASE_FAILED);
  EXPECT_THAT(membership_.reason(),
              HasSubstr("rank 6 workload: derived plan fingerprint aaaaaaaaaaaa"));

  membership_.StartEpoch(MakePlan(2, kWorkloadTopology.c_str()), now_);
  EXPECT_THAT(membership_.Report(old, now_),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("epoch 1 is over")));
  EXPECT_EQ(membership_.phase(), v1::PHASE_PLANNED);
}

constexpr char kDeadlines[] =
    "deadlines { bootstrap_ms: 60000 split_ms: 30000 validate_ms: 20000 workload_ms: 30000 }";

// Deadlines on moved times: the world registers (and is assigned) at now_; reports come at
// now_ + the seconds given.
class StallTest : public MembershipTest {
 protected:
  void Start(const std::string& readiness, const std::string& deadlines = kDeadlines) {
    membership_ = Membership(MakePlan(
        1, absl::StrCat(kTopology, "readiness: \"", readiness, "\"\n", deadlines).c_str()));
    RegisterWorld();
  }
  void Agent(int64_t rank, v1::Phase phase, double seconds, const std::string& detail = "") {
    RankReport report = ReadyReport(rank);
    if (phase != v1::PHASE_READY) report.groups.clear();
    report.phase = phase;
    report.detail = detail;
    ASSERT_THAT(membership_.Report(report, now_ + absl::Seconds(seconds)), IsOk());
  }
  void Agents(v1::Phase phase, double seconds) {
    for (int64_t rank = 0; rank < 8; ++rank) Agent(rank, phase, seconds);
  }
  void Workload(int64_t rank, v1::Phase phase, double seconds, const std::string& detail = "") {
    ASSERT_THAT(
        membership_.Report(WorkloadReport(rank, phase, detail), now_ + absl::Seconds(seconds)),
        IsOk());
  }
  std::optional<Membership::Stall> StallAt(double seconds) const {
    return membership_.FindStall(now_ + absl::Seconds(seconds),
                                 membership_.plan().topology.deadlines());
  }
};

TEST_F(StallTest, FindsTheSlowestRankPastItsDeadline) {
  struct Case {
    std::string name;
    std::string readiness;
    std::function<void()> setup;
    double at;           // seconds after the assignment
    std::string reason;  // empty: no stall
  };
  const std::vector<Case> cases = {
      {"within the bootstrap deadline", "agent", [] {}, 59.9, ""},
      {"nobody bootstrapped", "agent", [] {}, 61,
       "rank 0 (pod pod-node-a-0, node node-a) stuck in agent PLANNED for 61.0 s: deadline "
       "bootstrap_ms 60000"},
      {"bootstrap counts from the plan, the rank still PLANNED first", "agent",
       [this] {
         for (int64_t rank = 0; rank < 8; ++rank) {
           if (rank != 5) Agent(rank, v1::PHASE_BOOTSTRAPPING, 50);
         }
       },
       60.5,
       "rank 5 (pod pod-node-b-1, node node-b) stuck in agent PLANNED for 60.5 s: deadline "
       "bootstrap_ms 60000"},
      {"splitting counts from its own start", "agent",
       [this] {
         Agents(v1::PHASE_SPLITTING, 40);
         Agent(3, v1::PHASE_SPLITTING, 45, "splitting pp");
       },
       71.2,
       "rank 0 (pod pod-node-a-0, node node-a) stuck in agent SPLITTING for 31.2 s: deadline "
       "split_ms 30000"},
      {"splitting within its deadline", "agent", [this] { Agents(v1::PHASE_SPLITTING, 40); }, 70,
       ""},
      {"validating, with what the agent said", "agent",
       [this] {
         Agents(v1::PHASE_VALIDATING, 10);
         for (int64_t rank = 0; rank < 8; ++rank) {
           if (rank != 6) Agent(rank, v1::PHASE_READY, 12);
         }
         Agent(6, v1::PHASE_VALIDATING, 13, "all-reduce on dp");
       },
       30.5,
       "rank 6 (pod pod-node-b-2, node node-b) stuck in agent VALIDATING (all-reduce on dp) for "
       "20.5 s: deadline validate_ms 20000"},
      {"workload from its agent's READY", "workload",
       [this] {
         Agents(v1::PHASE_READY, 100);
         for (int64_t rank = 0; rank < 8; ++rank) {
           if (rank != 2) Workload(rank, v1::PHASE_READY, 110);
         }
         Workload(2, v1::PHASE_SPLITTING, 110, "creating dp");
       },
       141.2,
       "rank 2 (pod pod-node-a-2, node node-a) stuck in workload SPLITTING (creating dp) for "
       "31.2 s: deadline workload_ms 30000"},
      {"a workload that never reported", "workload",
       [this] {
         Agents(v1::PHASE_READY, 100);
         for (int64_t rank = 1; rank < 8; ++rank) Workload(rank, v1::PHASE_READY, 101);
       },
       130.5,
       "rank 0 (pod pod-node-a-0, node node-a) stuck in workload PLANNED for 30.5 s: deadline "
       "workload_ms 30000"},
      {"workloads do not count with agent readiness", "agent",
       [this] {
         for (int64_t rank = 0; rank < 8; ++rank) {
           if (rank != 4) Agent(rank, v1::PHASE_READY, 10);
         }
         Agent(4, v1::PHASE_VALIDATING, 30);
         Workload(1, v1::PHASE_SPLITTING, 10);
       },
       45, ""},
      {"excluded members are the policy's", "agent",
       [this] { membership_.Exclude({membership_.Assignment()[0]}); }, 61,
       "rank 1 (pod pod-node-a-1, node node-a) stuck in agent PLANNED for 61.0 s: deadline "
       "bootstrap_ms 60000"},
      {"a FAILED epoch has no deadline", "agent", [this] { Agent(2, v1::PHASE_FAILED, 1); }, 600,
       ""},
  };
  for (const Case& c : cases) {
    Start(c.readiness);
    c.setup();
    std::optional<Membership::Stall> stall = StallAt(c.at);
    if (c.reason.empty()) {
      EXPECT_EQ(stall, std::nullopt) << c.name << ": " << stall->reason;
      continue;
    }
    ASSERT_TRUE(stall.has_value()) << c.name;
    EXPECT_EQ(stall->reason, c.reason) << c.name;
  }
}

TEST_F(StallTest, AgentStallsComeBeforeWorkloadStalls) {
  Start("workload");
  for (int64_t rank = 0; rank < 8; ++rank) {
    if (rank != 7) Agent(rank, v1::PHASE_READY, 10);
  }
  Agent(7, v1::PHASE_VALIDATING, 30);
  // The workloads of ranks 0..6 (never reported) are 41 s past their agents' READY; rank 7's
  // agent is 21 s into VALIDATING.
  std::optional<Membership::Stall> stall = StallAt(51);
  ASSERT_TRUE(stall.has_value());
  EXPECT_EQ(stall->rank, 7);
  EXPECT_EQ(stall->layer, v1::REPORT_LAYER_UNSPECIFIED);
  EXPECT_EQ(stall->phase, v1::PHASE_VALIDATING);
}

TEST_F(StallTest, NoDeadlinesNoStall) {
  Start("workload", "");
  EXPECT_EQ(StallAt(86400 * 7), std::nullopt);
}

TEST_F(StallTest, TheStallReportFailsTheRankLikeItsOwnFailureWithoutRenewingItsLease) {
  Start("workload");
  Agents(v1::PHASE_READY, 100);
  Workload(2, v1::PHASE_SPLITTING, 110, "creating dp");
  const absl::Time at = now_ + absl::Seconds(141.2);
  std::optional<Membership::Stall> stall = StallAt(141.2);
  ASSERT_TRUE(stall.has_value());
  // Rank 0's workload never reported: PLANNED since its agent's READY at 100 s, 41.2 s ago.
  EXPECT_EQ(stall->rank, 0);
  EXPECT_EQ(stall->phase, v1::PHASE_PLANNED);
  const RankReport& report = stall->report;
  EXPECT_EQ(report.layer, v1::REPORT_LAYER_WORKLOAD);
  EXPECT_EQ(report.phase, v1::PHASE_FAILED);
  EXPECT_EQ(report.error, stall->reason);
  EXPECT_EQ(report.member_id, stall->member->member_id);
  // The daemon's own report: it carries no session token and is taken by member id.
  EXPECT_EQ(report.session_token, "");
  EXPECT_THAT(membership_.CheckReport(report, Membership::ReportSource::kDaemon), IsOk());
  EXPECT_THAT(membership_.CheckReport(report), StatusIs(absl::StatusCode::kUnauthenticated));

  const int64_t seen = membership_.Status().members(0).last_seen().seconds();
  absl::StatusOr<v1::Phase> phase = membership_.ApplyStall(*stall, at);
  ASSERT_THAT(phase, IsOk());
  EXPECT_EQ(*phase, v1::PHASE_FAILED);
  const v1::ClusterStatus status = membership_.Status();
  EXPECT_EQ(status.reason(), stall->reason);
  EXPECT_EQ(status.members(0).workload().phase(), v1::PHASE_FAILED);
  EXPECT_EQ(status.members(0).last_seen().seconds(), seen);
  EXPECT_EQ(StallAt(500), std::nullopt);
}

}  // namespace
}  // namespace splitd::core
