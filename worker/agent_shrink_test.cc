// The agent's choice between shrinking a held device world and bootstrapping a fresh one, when
// a plan says it only removes ranks from the epoch before it (Plan.shrinks_epoch).

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/server.h"
#include "gtest/gtest.h"
#include "plan/split_planner.h"
#include "splitd/v1/agent_service.grpc.pb.h"
#include "tests/testing/fake_agent_service.h"
#include "tests/testing/local_grpc_server.h"
#include "worker/agent.h"

namespace splitd::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Stopped agents, destroyed after the last test. An Agent destroyed while the progress reports
// it sent without waiting are still in flight makes gRPC 1.51 abort (grpc_cq_internal_unref on
// the callback API's thread); by the end of the run those calls are long done.
class StoppedAgents : public ::testing::Environment {
 public:
  static void Keep(std::unique_ptr<Agent> agent) {
    absl::MutexLock lock(&mu_);
    agents_->push_back(std::move(agent));
  }
  void TearDown() override {
    absl::MutexLock lock(&mu_);
    agents_->clear();
  }

 private:
  static absl::Mutex mu_;
  static std::vector<std::unique_ptr<Agent>>* agents_ ABSL_GUARDED_BY(mu_);
};
absl::Mutex StoppedAgents::mu_(absl::kConstInit);
std::vector<std::unique_ptr<Agent>>* StoppedAgents::agents_ =
    new std::vector<std::unique_ptr<Agent>>();
::testing::Environment* const kStoppedAgents =
    ::testing::AddGlobalTestEnvironment(new StoppedAgents);

// A daemon stand-in for one member: streams the plans the test queues, records reports, and
// keeps a rendezvous space per epoch (KvSet/KvGet with wait/KvAdd) that tests may seed.
class FakeDaemon final : public testing::FakeAgentService {
 public:
  // Stands in for the other ranks of `epoch`: sets counter `key` before the agent gets there.
  void SeedCounter(int64_t epoch, const std::string& key, int64_t value) {
    absl::MutexLock lock(&mu_);
    counters_[{epoch, key}] = value;
  }

  // The value of `key` in `epoch`'s space; "" when absent.
  std::string Value(int64_t epoch, const std::string& key) {
    absl::MutexLock lock(&mu_);
    auto it = values_.find({epoch, key});
    return it == values_.end() ? "" : it->second;
  }

  // Keys of `epoch`'s space that start with `prefix` (values and counters).
  std::vector<std::string> Keys(int64_t epoch, const std::string& prefix) {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> keys;
    for (const auto& [key, value] : values_) {
      if (key.first == epoch && key.second.rfind(prefix, 0) == 0) keys.push_back(key.second);
    }
    for (const auto& [key, value] : counters_) {
      if (key.first == epoch && key.second.rfind(prefix, 0) == 0) keys.push_back(key.second);
    }
    return keys;
  }

  // Waits until a report of `epoch` with `phase` arrived; false after 20 s.
  bool AwaitReport(int64_t epoch, v1::Phase phase) {
    return testing::FakeAgentService::AwaitReport(
        [epoch, phase](const v1::ReportGroupStatusRequest& report) {
          return report.epoch() == epoch && report.phase() == phase;
        });
  }

  // Waits until READY of `epoch` and its three progress reports arrived: progress goes out
  // without waiting, and an agent must not be torn down with such calls still in flight.
  bool AwaitReady(int64_t epoch) {
    for (v1::Phase phase :
         {v1::PHASE_READY, v1::PHASE_BOOTSTRAPPING, v1::PHASE_SPLITTING, v1::PHASE_VALIDATING}) {
      if (!AwaitReport(epoch, phase)) return false;
    }
    return true;
  }

  grpc::Status KvSet(grpc::ServerContext*, const v1::KvSetRequest* request,
                     v1::KvSetResponse*) override {
    absl::MutexLock lock(&mu_);
    values_[{request->epoch(), request->key()}] = request->value();
    return grpc::Status::OK;
  }

  grpc::Status KvGet(grpc::ServerContext* context, const v1::KvGetRequest* request,
                     v1::KvGetResponse* response) override {
    absl::MutexLock lock(&mu_);
    auto present = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const std::string& key : request->keys()) {
        if (values_.count({request->epoch(), key}) == 0) return false;
      }
      return true;
    };
    const absl::Time deadline = absl::FromChrono(context->deadline());
    while (!present()) {
      if (context->IsCancelled() || absl::Now() >= deadline) {
        return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "keys not set in time");
      }
      mu_.AwaitWithTimeout(absl::Condition(&present), absl::Milliseconds(10));
    }
    for (const std::string& key : request->keys()) {
      response->add_values(values_[{request->epoch(), key}]);
    }
    return grpc::Status::OK;
  }

  grpc::Status KvAdd(grpc::ServerContext*, const v1::KvAddRequest* request,
                     v1::KvAddResponse* response) override {
    absl::MutexLock lock(&mu_);
    int64_t& counter = counters_[{request->epoch(), request->key()}];
    counter += request->delta();
    response->set_value(counter);
    return grpc::Status::OK;
  }

 private:
  absl::Mutex mu_;
  std::map<std::pair<int64_t, std::string>, std::string> values_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<int64_t, std::string>, int64_t> counters_ ABSL_GUARDED_BY(mu_);
};

// What the device builders did, in order, each entry naming the builder ("b1", "b2", ...).
class EventLog {
 public:
  void Add(const std::string& event) {
    absl::MutexLock lock(&mu_);
    events_.push_back(event);
  }
  std::vector<std::string> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  // Waits until `count` events were logged (a release follows the READY report); 20 s at most.
  std::vector<std::string> AwaitEvents(size_t count) {
    absl::MutexLock lock(&mu_);
    auto logged = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return events_.size() >= count; };
    mu_.AwaitWithTimeout(absl::Condition(&logged), absl::Seconds(20));
    return events_;
  }
  int NextId() {
    absl::MutexLock lock(&mu_);
    return ++builders_;
  }
  // While busy, a background teardown does not finish (GroupBuilder::TearingDown), and the
  // builders log their destruction.
  void SetTeardownBusy(bool busy) {
    absl::MutexLock lock(&mu_);
    teardown_busy_ = busy;
    log_destruction_ = log_destruction_ || busy;
  }
  bool teardown_busy() {
    absl::MutexLock lock(&mu_);
    return teardown_busy_;
  }
  bool log_destruction() {
    absl::MutexLock lock(&mu_);
    return log_destruction_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
  int builders_ ABSL_GUARDED_BY(mu_) = 0;
  bool teardown_busy_ ABSL_GUARDED_BY(mu_) = false;
  bool log_destruction_ ABSL_GUARDED_BY(mu_) = false;
};

// A "cuda:nccl" stand-in that forms and validates every group at once and logs each step.
class FakeDeviceBuilder : public GroupBuilder {
 public:
  FakeDeviceBuilder(EventLog* log, bool can_shrink, absl::Status shrink_result)
      : log_(log),
        name_(absl::StrCat("b", log->NextId())),
        can_shrink_(can_shrink),
        shrink_result_(std::move(shrink_result)) {}
  ~FakeDeviceBuilder() override {
    if (log_->log_destruction()) Log("destroyed");
  }

  std::string backend() const override { return "cuda:nccl"; }
  absl::Status BootstrapWorld(const WorldSpec& spec, RendezvousClient*) override {
    epoch_ = spec.epoch;
    Log(absl::StrCat("bootstrap ", spec.epoch, " (", spec.world_size, " ranks)"));
    return absl::OkStatus();
  }
  absl::Status FormGroups(const WorldSpec& spec, RendezvousClient*) override {
    Log(absl::StrCat("form ", spec.epoch));
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<GroupValidation>> Validate(const WorldSpec& spec) override {
    std::vector<GroupValidation> results;
    for (const GroupAssignment& group : spec.groups) {
      GroupValidation& v = results.emplace_back();
      v.kind = group.kind;
      v.group_index = group.group_index;
      v.ok = true;
      v.allreduce_value = static_cast<double>(group.members.size());
    }
    return results;
  }
  void Release() override {
    if (epoch_ != 0) Log(absl::StrCat("release ", epoch_));
    epoch_ = 0;
  }
  bool CanShrink() const override { return can_shrink_; }
  absl::Status ShrinkWorld(const WorldSpec& spec, const std::vector<int32_t>& previous_ranks,
                           RendezvousClient*) override {
    Log(absl::StrCat("shrink ", epoch_, "->", spec.epoch, " keeping [",
                     absl::StrJoin(previous_ranks, ","), "]"));
    if (shrink_result_.ok()) epoch_ = spec.epoch;
    return shrink_result_;
  }
  void Abort() override {
    if (epoch_ != 0) Log(absl::StrCat("abort ", epoch_));
    epoch_ = 0;
  }
  void AbortInBackground() override {
    if (epoch_ != 0) Log(absl::StrCat("abort ", epoch_, " (background)"));
    epoch_ = 0;
    tearing_down_ = true;
  }
  bool TearingDown() const override { return tearing_down_ && log_->teardown_busy(); }

 private:
  void Log(const std::string& event) { log_->Add(absl::StrCat(name_, " ", event)); }

  EventLog* log_;
  std::string name_;
  bool can_shrink_;
  absl::Status shrink_result_;
  int64_t epoch_ = 0;
  bool tearing_down_ = false;
};

// The plan of `epoch` for a world of `world_size` (one tp group of all ranks, cuda:nccl), this
// member at rank `rank`.
v1::WatchPlanResponse Plan(int64_t epoch, int world_size, int64_t rank) {
  v1::Topology topology;
  topology.set_cluster("elastic");
  topology.set_backend("cuda:nccl");
  v1::Dim* dim = topology.add_dims();
  dim->set_name("tp");
  dim->set_size(world_size);
  absl::StatusOr<plan::SplitPlan> plan = plan::SplitPlanner::Build(topology, epoch);
  EXPECT_TRUE(plan.ok()) << plan.status();
  v1::WatchPlanResponse message;
  message.set_rank(rank);
  message.mutable_plan()->set_cluster("elastic");
  message.mutable_plan()->set_epoch(epoch);
  message.mutable_plan()->set_fingerprint(plan->fingerprint);
  message.mutable_plan()->set_world_size(world_size);
  message.mutable_plan()->set_method(plan->method);
  *message.mutable_plan()->mutable_topology() = plan->topology;
  return message;
}

// The plan of epoch 2, world 2, that removes rank 2 of epoch `shrinks` (ranks 0 and 1 stay).
v1::WatchPlanResponse ShrinkPlan(int64_t shrinks, int64_t rank) {
  v1::WatchPlanResponse message = Plan(2, 2, rank);
  message.mutable_plan()->set_shrinks_epoch(shrinks);
  message.mutable_plan()->add_previous_ranks(0);
  message.mutable_plan()->add_previous_ranks(1);
  return message;
}

class AgentShrinkTest : public testing::LocalGrpcServerTest {
 protected:
  std::vector<grpc::Service*> Services() override { return {&daemon_}; }
  void TearDown() override {
    if (agent_ != nullptr) agent_->Stop();
    if (run_.joinable()) run_.join();
    if (agent_ != nullptr) StoppedAgents::Keep(std::move(agent_));
    LocalGrpcServerTest::TearDown();
  }

  // Starts an agent whose cuda:nccl builders shrink as told.
  void Start(bool hold, bool can_shrink = true, absl::Status shrink_result = absl::OkStatus()) {
    AgentOptions options;
    options.cluster = "elastic";
    options.pod = "pod-0";
    options.node = "node-0";
    options.timeout = absl::Seconds(10);
    options.hold_device_communicators = hold;
    GroupBuilderFactories factories;
    factories["cuda:nccl"] = [this, can_shrink, shrink_result] {
      return std::make_unique<FakeDeviceBuilder>(&log_, can_shrink, shrink_result);
    };
    agent_ = std::make_unique<Agent>(
        options, grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()), factories);
    run_ = std::thread([this] { agent_->Run().IgnoreError(); });
  }

  // Epoch 1 (world 3, this member rank 0) formed, then `next` delivered; the other rank of
  // epoch 2 has voted already (arrived 1) and refused (`peer_refuses`) or not.
  void RunEpochs(const v1::WatchPlanResponse& next, bool peer_refuses = false) {
    daemon_.Publish(Plan(1, 3, 0));
    ASSERT_TRUE(daemon_.AwaitReady(1));
    daemon_.SeedCounter(2, "shrink/cuda:nccl/arrived", 1);
    daemon_.SeedCounter(2, "shrink/cuda:nccl/refusals", peer_refuses ? 1 : 0);
    daemon_.Publish(next);
  }

  FakeDaemon daemon_;
  EventLog log_;
  std::unique_ptr<Agent> agent_;
  std::thread run_;
};

TEST_F(AgentShrinkTest, ShrinksTheHeldWorldWhenThePlanShrinksTheHeldEpoch) {
  Start(/*hold=*/true);
  RunEpochs(ShrinkPlan(/*shrinks=*/1, /*rank=*/0));
  ASSERT_TRUE(daemon_.AwaitReady(2));
  EXPECT_EQ(daemon_.Value(2, "shrink/cuda:nccl/decision"), "shrink");
  // The same builder goes on from epoch 1 to 2: no release, no abort, no fresh bootstrap.
  EXPECT_THAT(log_.events(), ElementsAre("b1 bootstrap 1 (3 ranks)", "b1 form 1",
                                         "b1 shrink 1->2 keeping [0,1]", "b1 form 2"));
}

TEST_F(AgentShrinkTest, BootstrapsAfreshWhenThePlanShrinksAnotherEpoch) {
  Start(/*hold=*/true);
  RunEpochs(ShrinkPlan(/*shrinks=*/7, /*rank=*/0));
  ASSERT_TRUE(daemon_.AwaitReady(2));
  // Every rank still votes (this one holds no world of epoch 7, so it refuses).
  EXPECT_EQ(daemon_.Value(2, "shrink/cuda:nccl/decision"), "bootstrap");
  EXPECT_THAT(log_.events(),
              ElementsAre("b1 bootstrap 1 (3 ranks)", "b1 form 1", "b1 abort 1 (background)",
                          "b2 bootstrap 2 (2 ranks)", "b2 form 2"));
}

TEST_F(AgentShrinkTest, NeitherVotesNorShrinksWhenThePlanShrinksNothing) {
  Start(/*hold=*/true);
  daemon_.Publish(Plan(1, 3, 0));
  ASSERT_TRUE(daemon_.AwaitReady(1));
  daemon_.Publish(Plan(2, 2, 0));
  ASSERT_TRUE(daemon_.AwaitReady(2));
  EXPECT_THAT(daemon_.Keys(2, "shrink/"), IsEmpty());
  // Held device communicators are aborted on any new epoch (a peer may be dead), never released.
  EXPECT_THAT(log_.events(),
              ElementsAre("b1 bootstrap 1 (3 ranks)", "b1 form 1", "b1 abort 1 (background)",
                          "b2 bootstrap 2 (2 ranks)", "b2 form 2"));
}

TEST_F(AgentShrinkTest, ANewEpochDoesNotWaitForTheOldCommunicatorsTeardown) {
  Start(/*hold=*/true);
  daemon_.Publish(Plan(1, 3, 0));
  ASSERT_TRUE(daemon_.AwaitReady(1));
  log_.SetTeardownBusy(true);  // b1's background abort does not finish until told
  daemon_.Publish(Plan(2, 2, 0));
  ASSERT_TRUE(daemon_.AwaitReady(2));
  // Epoch 2 is READY while b1 is still being torn down: the agent keeps it, not waiting on it.
  EXPECT_THAT(log_.events(),
              ElementsAre("b1 bootstrap 1 (3 ranks)", "b1 form 1", "b1 abort 1 (background)",
                          "b2 bootstrap 2 (2 ranks)", "b2 form 2"));
  // Stopping waits for it (a real builder's destructor waits for its aborts, bounded).
  agent_->Stop();
  run_.join();
  EXPECT_THAT(log_.events(),
              ElementsAre("b1 bootstrap 1 (3 ranks)", "b1 form 1", "b1 abort 1 (background)",
                          "b2 bootstrap 2 (2 ranks)", "b2 form 2", "b2 release 2", "b2 destroyed",
                          "b1 destroyed"));
}

TEST_F(AgentShrinkTest, WithoutHeldCommunicatorsVotesNoAndBootstraps) {
  Start(/*hold=*/false);  // sidecar mode: device communicators released after validation
  RunEpochs(ShrinkPlan(/*shrinks=*/1, /*rank=*/0));
  ASSERT_TRUE(daemon_.AwaitReady(2));
  EXPECT_EQ(daemon_.Value(2, "shrink/cuda:nccl/decision"), "bootstrap");
  EXPECT_THAT(log_.AwaitEvents(6),
              ElementsAre("b1 bootstrap 1 (3 ranks)", "b1 form 1", "b1 release 1",
                          "b2 bootstrap 2 (2 ranks)", "b2 form 2", "b2 release 2"));
}

TEST_F(AgentShrinkTest, FallsBackToAFreshWorldWhenTheShrinkIsUnimplemented) {
  Start(/*hold=*/true, /*can_shrink=*/true,
        absl::UnimplementedError("ncclCommShrink needs NCCL >= 2.27.3"));
  RunEpochs(ShrinkPlan(/*shrinks=*/1, /*rank=*/0));
  ASSERT_TRUE(daemon_.AwaitReady(2));
  // The failed attempt leaves the builder aborted (a removed peer may be dead), then the same
  // builder bootstraps the new world.
  EXPECT_THAT(log_.events(),
              ElementsAre("b1 bootstrap 1 (3 ranks)", "b1 form 1", "b1 shrink 1->2 keeping [0,1]",
                          "b1 abort 1 (background)", "b1 bootstrap 2 (2 ranks)", "b1 form 2"));
}

TEST_F(AgentShrinkTest, FallsBackWithoutTryingWhenTheBackendCannotShrink) {
  Start(/*hold=*/true, /*can_shrink=*/false);
  RunEpochs(ShrinkPlan(/*shrinks=*/1, /*rank=*/0));
  ASSERT_TRUE(daemon_.AwaitReady(2));
  EXPECT_EQ(daemon_.Value(2, "shrink/cuda:nccl/decision"), "bootstrap");
  EXPECT_THAT(log_.events(),
              ElementsAre("b1 bootstrap 1 (3 ranks)", "b1 form 1", "b1 abort 1 (background)",
                          "b1 bootstrap 2 (2 ranks)", "b1 form 2"));
}

TEST_F(AgentShrinkTest, BootstrapsWhenAnotherRankCannotShrink) {
  Start(/*hold=*/true);
  RunEpochs(ShrinkPlan(/*shrinks=*/1, /*rank=*/0), /*peer_refuses=*/true);
  ASSERT_TRUE(daemon_.AwaitReady(2));
  EXPECT_EQ(daemon_.Value(2, "shrink/cuda:nccl/decision"), "bootstrap");
  EXPECT_THAT(log_.events(),
              ElementsAre("b1 bootstrap 1 (3 ranks)", "b1 form 1", "b1 abort 1 (background)",
                          "b1 bootstrap 2 (2 ranks)", "b1 form 2"));
}

TEST_F(AgentShrinkTest, ARankLeftOutAbortsItsDeviceCommunicators) {
  Start(/*hold=*/true);
  daemon_.Publish(Plan(1, 3, 0));
  ASSERT_TRUE(daemon_.AwaitReady(1));
  daemon_.Publish(ShrinkPlan(/*shrinks=*/1, /*rank=*/-1));
  for (int i = 0; i < 2000 && agent_->state().epoch != 2; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(agent_->state().epoch, 2);
  ASSERT_EQ(agent_->state().rank, -1);
  EXPECT_THAT(log_.events(),
              ElementsAre("b1 bootstrap 1 (3 ranks)", "b1 form 1", "b1 abort 1 (background)"));
  EXPECT_THAT(daemon_.Keys(2, "shrink/"), IsEmpty());  // a rank left out does not vote
}

}  // namespace
}  // namespace splitd::worker
