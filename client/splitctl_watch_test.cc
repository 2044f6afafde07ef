// `splitctl status NAME --watch` against a ControlService that plays a scripted sequence of
// GetStatus answers, on a real in-process gRPC server, with a fake clock for the waits.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/splitctl_commands.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "splitd/v1/control_service.grpc.pb.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/local_grpc_server.h"

namespace splitd::cli {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kCluster[] = "llama";

// One answer of the script: a status, or an error.
struct Step {
  v1::ClusterStatus status;
  grpc::Status error = grpc::Status::OK;
};

Step StatusStep(v1::Phase phase, const std::string& reason = "") {
  Step step;
  v1::ClusterStatus& status = step.status;
  status.set_cluster(kCluster);
  status.set_epoch(1);
  status.set_state(phase);
  status.set_fingerprint("ab12");
  status.set_reason(reason);
  status.set_world_size(2);
  status.set_registered_members(phase == v1::PHASE_PENDING ? 1 : 2);
  for (int rank = 0; rank < status.registered_members(); ++rank) {
    v1::MemberStatus* member = status.add_members();
    member->set_member_id(absl::StrCat("m-", rank));
    member->set_rank(rank);
    member->set_pod(absl::StrCat("pod-", rank));
    member->set_node("node-a");
    member->set_host("10.0.0.1");
    member->set_local_index(rank);
    member->set_state(v1::MEMBER_STATE_ACTIVE);
    member->set_phase(phase);
    if (phase == v1::PHASE_READY) member->mutable_timings()->set_groups_ready_ms(150 + rank);
  }
  v1::GroupKindStatus* kind = status.add_groups();
  kind->set_kind("tp");
  kind->set_groups(1);
  if (phase == v1::PHASE_READY) {
    kind->set_ready(1);
    kind->set_max_latency_us(12);
    kind->add_validations()->set_latency_us(12);
  }
  return step;
}

Step ErrorStep(grpc::StatusCode code, const std::string& message) {
  Step step;
  step.error = grpc::Status(code, message);
  return step;
}

// Answers GetStatus with the script's steps in order, repeating the last one.
class ScriptedControlService final : public v1::ControlService::Service {
 public:
  void SetScript(std::vector<Step> steps) {
    absl::MutexLock lock(&mu_);
    steps_ = std::move(steps);
  }

  grpc::Status GetStatus(grpc::ServerContext*, const v1::GetStatusRequest* request,
                         v1::GetStatusResponse* response) override {
    absl::MutexLock lock(&mu_);
    if (request->cluster() != kCluster) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("cluster \"", request->cluster(), "\" not found"));
    }
    if (steps_.empty()) return grpc::Status(grpc::StatusCode::INTERNAL, "no script");
    const Step& step = steps_[std::min(calls_, steps_.size() - 1)];
    ++calls_;
    if (!step.error.ok()) return step.error;
    *response->mutable_status() = step.status;
    return grpc::Status::OK;
  }

  // Events WatchEvents sends once the first GetStatus was answered; none: the stream ends.
  void SetEvents(std::vector<v1::Event> events) {
    absl::MutexLock lock(&mu_);
    events_ = std::move(events);
  }

  grpc::Status WatchEvents(grpc::ServerContext* context, const v1::WatchEventsRequest* request,
                           grpc::ServerWriter<v1::Event>* writer) override {
    std::vector<v1::Event> events;
    {
      absl::MutexLock lock(&mu_);
      if (request->cluster() != kCluster || events_.empty()) return grpc::Status::OK;
      while (calls_ == 0 && !context->IsCancelled()) {
        mu_.AwaitWithTimeout(absl::Condition(this, &ScriptedControlService::AnsweredLocked),
                             absl::Milliseconds(10));
      }
      events = events_;
    }
    for (const v1::Event& event : events) writer->Write(event);
    while (!context->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
    return grpc::Status::OK;
  }

  size_t calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  bool AnsweredLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return calls_ > 0; }

  absl::Mutex mu_;
  std::vector<Step> steps_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::Event> events_ ABSL_GUARDED_BY(mu_);
  size_t calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// Time stands still except when splitctl sleeps; can play a signal after some sleeps.
class FakeClock final : public WatchClock {
 public:
  absl::Time Now() override { return now_; }

  void Sleep(absl::Duration duration) override {
    sleeps_.push_back(duration);
    now_ += duration;
    if (stop_after_sleeps_ > 0 && sleeps_.size() >= stop_after_sleeps_) stop_signal_ = SIGINT;
  }

  int StopSignal() override { return stop_signal_; }

  void StopAfterSleeps(size_t sleeps) { stop_after_sleeps_ = sleeps; }
  const std::vector<absl::Duration>& sleeps() const { return sleeps_; }

 private:
  absl::Time now_ = absl::FromUnixSeconds(1714557600);  // 2024-05-01T10:00:00Z
  std::vector<absl::Duration> sleeps_;
  size_t stop_after_sleeps_ = 0;
  int stop_signal_ = 0;
};

struct Result {
  int code;
  std::string out;
  std::string err;
};

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// The `state` of each JSON line.
std::vector<std::string> States(const std::string& out) {
  std::vector<std::string> states;
  for (const std::string& line : Lines(out)) {
    states.push_back(nlohmann::json::parse(line)["state"].get<std::string>());
  }
  return states;
}

class SplitctlWatchTest : public testing::LocalGrpcServerTest {
 protected:
  std::vector<grpc::Service*> Services() override { return {&service_}; }

  // Runs splitctl against the scripted daemon with `clock` (null: the real one).
  Result Run(const std::vector<std::string>& args, WatchClock* clock) {
    std::istringstream in;
    std::ostringstream out;
    std::ostringstream err;
    int code = RunSplitctl(args, in, out, err, address_, clock);
    return {code, out.str(), err.str()};
  }

  Result Run(const std::vector<std::string>& args) { return Run(args, &clock_); }

  ScriptedControlService service_;
  FakeClock clock_;
};

TEST_F(SplitctlWatchTest, JsonLinesPrintEachChangeOnceAndExitZeroWhenReady) {
  Step heartbeat = StatusStep(v1::PHASE_PENDING);
  // Only last_seen moved: not a change worth a line.
  heartbeat.status.mutable_members(0)->mutable_last_seen()->set_seconds(1714557601);
  service_.SetScript({StatusStep(v1::PHASE_PENDING), heartbeat, StatusStep(v1::PHASE_BOOTSTRAPPING),
                      StatusStep(v1::PHASE_BOOTSTRAPPING), StatusStep(v1::PHASE_READY)});
  Result result = Run({"status", kCluster, "--watch", "-o", "json"});
  EXPECT_EQ(result.code, kExitOk) << result.err;
  EXPECT_EQ(result.err, "");
  EXPECT_THAT(States(result.out), ElementsAre("PENDING", "BOOTSTRAPPING", "READY"));
  // Compact: one whole object per line.
  for (const std::string& line : Lines(result.out)) {
    const nlohmann::json object = nlohmann::json::parse(line);
    EXPECT_EQ(object["cluster"], kCluster);
    EXPECT_TRUE(object["members"].is_array());
    EXPECT_TRUE(object["groups"].is_object());
  }
  const nlohmann::json ready = nlohmann::json::parse(Lines(result.out).back());
  EXPECT_EQ(ready["members"][1]["timings"]["groups_ready_ms"], 151.0);
  EXPECT_EQ(ready["groups"]["tp"]["median_latency_us"], 12.0);
  EXPECT_EQ(service_.calls(), 5u);
  EXPECT_THAT(clock_.sleeps(),
              ElementsAre(absl::Seconds(1), absl::Seconds(1), absl::Seconds(1), absl::Seconds(1)));
}

TEST_F(SplitctlWatchTest, TableSeparatesChangesWithTheTime) {
  service_.SetScript({StatusStep(v1::PHASE_PENDING), StatusStep(v1::PHASE_PENDING),
                      StatusStep(v1::PHASE_BOOTSTRAPPING), StatusStep(v1::PHASE_READY)});
  Result result = Run({"status", kCluster, "--watch", "--interval", "2"});
  EXPECT_EQ(result.code, kExitOk) << result.err;
  std::vector<std::string> states;
  std::vector<std::string> separators;
  for (const std::string& line : Lines(result.out)) {
    if (absl::StartsWith(line, "State:")) states.push_back(line);
    if (absl::StartsWith(line, "---")) separators.push_back(line);
  }
  EXPECT_THAT(states, ElementsAre("State:        PENDING", "State:        BOOTSTRAPPING",
                                  "State:        READY"));
  EXPECT_THAT(separators,
              ElementsAre("--- 2024-05-01T10:00:04Z ---", "--- 2024-05-01T10:00:06Z ---"));
  EXPECT_THAT(result.out, StartsWith("Cluster:      llama\n"));
  EXPECT_THAT(result.out, HasSubstr("\n\n--- 2024-05-01T10:00:04Z ---\nCluster:      llama\n"));
  EXPECT_THAT(clock_.sleeps(), Each(absl::Seconds(2)));
}

TEST_F(SplitctlWatchTest, YamlPrintsOneDocumentPerChange) {
  service_.SetScript({StatusStep(v1::PHASE_PENDING), StatusStep(v1::PHASE_READY)});
  Result result = Run({"status", kCluster, "-w", "-o", "yaml", "--interval", "100ms"});
  EXPECT_EQ(result.code, kExitOk) << result.err;
  EXPECT_THAT(result.out, StartsWith("---\ncluster: llama\n"));
  EXPECT_THAT(result.out, HasSubstr("\n---\ncluster: llama\n"));
  EXPECT_THAT(result.out, HasSubstr("state: READY\n"));
  EXPECT_THAT(clock_.sleeps(), ElementsAre(absl::Milliseconds(100)));
}

TEST_F(SplitctlWatchTest, FailedIsPrintedThenExitsOne) {
  service_.SetScript({StatusStep(v1::PHASE_PENDING), StatusStep(v1::PHASE_SPLITTING),
                      StatusStep(v1::PHASE_FAILED, "rank 1: tp split timed out")});
  Result result = Run({"status", kCluster, "--watch", "-o", "json"});
  EXPECT_EQ(result.code, kExitError);
  EXPECT_THAT(States(result.out), ElementsAre("PENDING", "SPLITTING", "FAILED"));
  EXPECT_EQ(nlohmann::json::parse(Lines(result.out).back())["reason"],
            "rank 1: tp split timed out");
  EXPECT_EQ(result.err, "error: cluster \"llama\" FAILED: rank 1: tp split timed out\n");
  EXPECT_EQ(service_.calls(), 3u);
}

TEST_F(SplitctlWatchTest, NotFoundWhileWatchingIsOneErrorLine) {
  service_.SetScript({StatusStep(v1::PHASE_PENDING),
                      ErrorStep(grpc::StatusCode::NOT_FOUND, "cluster \"llama\" not found")});
  Result result = Run({"status", kCluster, "--watch", "-o", "json"});
  EXPECT_EQ(result.code, kExitError);
  EXPECT_THAT(States(result.out), ElementsAre("PENDING"));
  EXPECT_EQ(result.err, "error: NOT_FOUND: cluster \"llama\" not found\n");
}

TEST_F(SplitctlWatchTest, UnknownClusterFailsOnTheFirstPoll) {
  service_.SetScript({StatusStep(v1::PHASE_READY)});
  Result result = Run({"status", "nope", "--watch"});
  EXPECT_EQ(result.code, kExitError);
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(result.err, "error: NOT_FOUND: cluster \"nope\" not found\n");
  EXPECT_TRUE(clock_.sleeps().empty());
}

TEST_F(SplitctlWatchTest, WatchTimeoutEndsWithOneErrorLine) {
  service_.SetScript({StatusStep(v1::PHASE_PENDING)});
  Result result = Run({"status", kCluster, "--watch", "--watch_timeout", "2.5", "-o", "json"});
  EXPECT_EQ(result.code, kExitError);
  EXPECT_THAT(States(result.out), ElementsAre("PENDING"));
  EXPECT_EQ(result.err, "error: timed out waiting for READY\n");
  // Polls at 0, 1, 2 and at the deadline itself.
  EXPECT_THAT(clock_.sleeps(),
              ElementsAre(absl::Seconds(1), absl::Seconds(1), absl::Milliseconds(500)));
  EXPECT_EQ(service_.calls(), 4u);
}

TEST_F(SplitctlWatchTest, ReadyAtTheDeadlineStillCounts) {
  service_.SetScript({StatusStep(v1::PHASE_PENDING), StatusStep(v1::PHASE_READY)});
  Result result = Run({"status", kCluster, "--watch", "--watch_timeout", "1", "-o", "json"});
  EXPECT_EQ(result.code, kExitOk) << result.err;
  EXPECT_THAT(States(result.out), ElementsAre("PENDING", "READY"));
}

TEST_F(SplitctlWatchTest, StopSignalEndsTheWatch) {
  service_.SetScript({StatusStep(v1::PHASE_PENDING)});
  clock_.StopAfterSleeps(2);
  Result result = Run({"status", kCluster, "--watch", "-o", "json"});
  EXPECT_EQ(result.code, 128 + SIGINT);
  EXPECT_THAT(States(result.out), ElementsAre("PENDING"));
  EXPECT_EQ(result.err, "error: interrupted by SIGINT before the cluster was READY\n");
  EXPECT_EQ(service_.calls(), 2u);
}

TEST_F(SplitctlWatchTest, WithoutWatchAFailedClusterIsJustPrinted) {
  service_.SetScript({StatusStep(v1::PHASE_FAILED, "boom")});
  Result result = Run({"status", kCluster, "-o", "json"});
  EXPECT_EQ(result.code, kExitOk) << result.err;
  EXPECT_EQ(nlohmann::json::parse(result.out)["state"], "FAILED");
  EXPECT_EQ(service_.calls(), 1u);
}

TEST_F(SplitctlWatchTest, RealClockReachesReady) {
  service_.SetScript({StatusStep(v1::PHASE_PENDING), StatusStep(v1::PHASE_READY)});
  Result result = Run({"status", kCluster, "--watch", "--interval", "10ms", "-o", "json"},
                      /*clock=*/nullptr);
  EXPECT_EQ(result.code, kExitOk) << result.err;
  EXPECT_THAT(States(result.out), ElementsAre("PENDING", "READY"));
}

TEST_F(SplitctlWatchTest, RealSigtermStopsTheWatchCleanly) {
  service_.SetScript({StatusStep(v1::PHASE_PENDING)});
  // The handler is in place before the first poll, so signal only after two.
  std::thread killer([this] {
    while (service_.calls() < 2) absl::SleepFor(absl::Milliseconds(5));
    kill(getpid(), SIGTERM);
  });
  Result result = Run({"status", kCluster, "--watch", "--interval", "10ms", "-o", "json"},
                      /*clock=*/nullptr);
  killer.join();
  EXPECT_EQ(result.code, 128 + SIGTERM);
  EXPECT_THAT(States(result.out), ElementsAre("PENDING"));
  EXPECT_EQ(result.err, "error: interrupted by SIGTERM before the cluster was READY\n");
}

// A step that waits on rank 1: its workload SPLITTING for `seconds`, in phase since 10:00:00.
Step WaitingStep(double seconds) {
  Step step = StatusStep(v1::PHASE_SPLITTING);
  step.status.set_readiness("workload");
  step.status.set_workload_state(v1::PHASE_SPLITTING);
  for (v1::MemberStatus& member : *step.status.mutable_members()) {
    member.mutable_phase_since()->set_seconds(1714557600);
    member.mutable_workload()->set_phase(v1::PHASE_SPLITTING);
  }
  v1::WaitingRank* waiting = step.status.add_waiting_on();
  waiting->set_rank(1);
  waiting->set_member_id("m-1");
  waiting->set_pod("pod-1");
  waiting->set_node("node-a");
  waiting->set_layer("workload");
  waiting->set_phase(v1::PHASE_SPLITTING);
  waiting->set_seconds(seconds);
  waiting->set_last_heartbeat_seconds(seconds / 10);
  waiting->set_detail("creating tp");
  step.status.set_waiting_on_total(1);
  return step;
}

TEST_F(SplitctlWatchTest, TableIsNotReprintedWhileOnlyTheWaitGrows) {
  service_.SetScript({WaitingStep(3), WaitingStep(4), WaitingStep(5), StatusStep(v1::PHASE_READY)});
  Result result = Run({"status", kCluster, "--watch"});
  EXPECT_EQ(result.code, kExitOk) << result.err;
  std::vector<std::string> waits;
  std::vector<std::string> states;
  for (const std::string& line : Lines(result.out)) {
    if (absl::StartsWith(line, "waiting for")) waits.push_back(line);
    if (absl::StartsWith(line, "State:")) states.push_back(line);
  }
  EXPECT_THAT(waits, ElementsAre("waiting for rank 1 (pod pod-1, node node-a): workload "
                                 "SPLITTING (creating tp) for 3.0 s, last heartbeat 0.3 s ago"));
  EXPECT_THAT(states, ElementsAre("State:        SPLITTING", "State:        READY"));
  // As of the fake clock's first poll, 10:00:00.
  EXPECT_THAT(result.out, HasSubstr("  SPLITTING  0.0s      SPLITTING  -\n"));
  EXPECT_EQ(service_.calls(), 4u);
}

TEST_F(SplitctlWatchTest, StalledEventIsPrintedBeforeTheFailedStatus) {
  v1::Event stalled;
  stalled.set_sequence(7);
  stalled.set_cluster(kCluster);
  stalled.set_epoch(1);
  stalled.set_kind(v1::EVENT_KIND_STALLED);
  stalled.set_member_id("m-1");
  stalled.set_rank(1);
  stalled.set_phase(v1::PHASE_SPLITTING);
  stalled.set_reason("rank 1 workload SPLITTING for 300.0 s, past its 300 s deadline");
  service_.SetEvents({stalled});
  service_.SetScript({WaitingStep(299), StatusStep(v1::PHASE_FAILED, "rank 1 stalled")});
  // A long interval: only the event cuts the wait short.
  Result result = Run({"status", kCluster, "--watch", "--interval", "60"}, /*clock=*/nullptr);
  EXPECT_EQ(result.code, kExitError);
  EXPECT_EQ(result.err, "error: cluster \"llama\" FAILED: rank 1 stalled\n");
  const std::string line =
      "event 7 STALLED epoch 1 (m-1 rank 1): rank 1 workload SPLITTING for 300.0 s, past its "
      "300 s deadline\n";
  EXPECT_THAT(result.out, HasSubstr("last heartbeat 29.9 s ago\n"));
  EXPECT_THAT(result.out, HasSubstr(absl::StrCat("\n", line, "\n--- ")));
  EXPECT_LT(result.out.find("State:        SPLITTING"), result.out.find(line));
  EXPECT_LT(result.out.find(line), result.out.find("State:        FAILED"));
  EXPECT_EQ(service_.calls(), 2u);
}

}  // namespace
}  // namespace splitd::cli
