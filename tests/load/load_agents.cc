// load_agents: simulates many worker agents from one process against a real splitd daemon.
//
// Registers --members agents (node "node-<i/8>", local index i%8, a fresh incarnation each) with
// at most --concurrency Register calls in flight, opens one WatchPlan stream per member as soon
// as its registration is answered, waits until every member holds a plan (ranked members and
// spares alike), then heartbeats every member every --heartbeat_interval_ms for --duration_s.
// Everything runs on gRPC's callback API over a few channels, so the number of threads does not
// depend on the number of members. Prints one `RESULT {json}` line; exits 1 when any RPC failed
// or not every member received its plan, 2 on bad flags.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "splitd/v1/agent_service.grpc.pb.h"
#include "tests/load/agent_client.h"

ABSL_FLAG(std::string, daemon, "127.0.0.1:7070", "splitd address HOST:PORT");
ABSL_FLAG(std::string, cluster, "load", "cluster to join (its topology must be applied)");
ABSL_FLAG(int, members, 1000, "number of simulated agents");
ABSL_FLAG(int, world, 0,
          "world size of the cluster's topology (0: --members); the rest are spares");
ABSL_FLAG(int, heartbeat_interval_ms, 1000, "each member heartbeats this often");
ABSL_FLAG(double, duration_s, 10, "length of the heartbeat phase, seconds");
ABSL_FLAG(int, concurrency, 256, "Register calls in flight at most");
ABSL_FLAG(int, streams_per_channel, 500, "WatchPlan streams per channel (one TCP connection each)");
ABSL_FLAG(double, plan_timeout_s, 60, "how long to wait for every member to hold the plan");
ABSL_FLAG(double, rpc_timeout_s, 30, "deadline of every unary call");

namespace splitd::load {
namespace {

double Seconds(int64_t ns) { return static_cast<double>(ns) / 1e9; }
double Millis(int64_t ns) { return static_cast<double>(ns) / 1e6; }

// Nearest-rank percentile of sorted values; 0 for none.
int64_t Percentile(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t index = static_cast<size_t>(p * static_cast<double>(sorted.size()));
  if (index >= sorted.size()) index = sorted.size() - 1;
  return sorted[index];
}

struct Config {
  std::string daemon;
  std::string cluster;
  int members = 0;
  int world = 0;
  int heartbeat_interval_ms = 0;
  double duration_s = 0;
  int concurrency = 0;
  int streams_per_channel = 0;
  absl::Duration plan_timeout;
  absl::Duration rpc_timeout;
};

class LoadRun;
using Watch = PlanWatch<LoadRun>;
using RegisterCall = UnaryCall<v1::RegisterRequest, v1::RegisterResponse>;
using HeartbeatCall = UnaryCall<v1::HeartbeatRequest, v1::HeartbeatResponse>;

// One simulated agent. Written by the callbacks of its own calls, which gRPC runs one at a
// time per call; read by the main thread only after the phase that writes it is over.
struct Agent {
  v1::MemberIdentity identity;
  v1::MemberCredentials credentials;
  int64_t registered_ns = 0;        // Register answered (OK or not)
  std::atomic<int64_t> plan_ns{0};  // first plan received
  int64_t rank = -2;                // -2: no plan yet
  int64_t epoch = 0;
  std::unique_ptr<Watch> watch;
};

// What the heartbeat phase measured, for the result line.
struct HeartbeatPhase {
  int64_t heartbeats_sent = 0;
  int64_t scheduler_lag_max_ns = 0;  // longest delay from a heartbeat's due time to its send
  int64_t client_threads = -1;       // halfway through; -1: not measured
};

// The whole run: registration, plan delivery, heartbeats, teardown.
class LoadRun {
 public:
  explicit LoadRun(const Config& config) : config_(config), agents_(config.members) {}

  int Run();

  // Callbacks, on gRPC's threads.
  void OnPlan(int index, const v1::WatchPlanResponse& response);
  void OnWatchDone(int index, const grpc::Status& status);

 private:
  bool Connect();
  void MakeIdentities();
  void LaunchRegister(int index);
  void OnRegistered(int index, RegisterCall* call, const grpc::Status& status);
  void SendHeartbeat(int index);
  void OnHeartbeat(HeartbeatCall* call, const grpc::Status& status);
  void RegisterAll();
  bool AwaitPlans();
  HeartbeatPhase RunHeartbeats();
  void CancelWatches();
  bool Failed(bool all_hold_plan);
  void PrintResult(const HeartbeatPhase& heartbeats);
  v1::AgentService::Stub* StubFor(int index) { return stubs_[index % stubs_.size()].get(); }
  std::chrono::system_clock::time_point RpcDeadline() const {
    return DeadlineIn(config_.rpc_timeout);
  }

  const Config config_;
  std::vector<std::unique_ptr<v1::AgentService::Stub>> stubs_;
  std::vector<Agent> agents_;

  std::atomic<int> next_register_{0};
  std::atomic<int64_t> first_register_ns_{0};
  std::atomic<int> watches_started_{0};
  std::atomic<bool> cancelling_{false};

  std::atomic<int64_t> register_errors_{0};
  std::atomic<int64_t> watch_errors_{0};
  std::atomic<int64_t> heartbeat_errors_{0};
  std::atomic<int64_t> plan_errors_{0};  // wrong ranks, duplicate ranks, empty plans
  std::atomic<int64_t> extra_plans_{0};  // plans after the first (a new epoch)
  std::atomic<int64_t> heartbeats_in_flight_{0};
  std::atomic<int64_t> heartbeats_peak_in_flight_{0};

  absl::Mutex mu_;
  int registered_ ABSL_GUARDED_BY(mu_) = 0;  // answered, OK or not
  int plan_holders_ ABSL_GUARDED_BY(mu_) = 0;
  int watches_done_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<int64_t> register_latencies_ns_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> heartbeat_latencies_ns_ ABSL_GUARDED_BY(mu_);
  std::string first_error_ ABSL_GUARDED_BY(mu_);
};

bool LoadRun::Connect() {
  stubs_ =
      ConnectStubs(config_.daemon, config_.members, config_.streams_per_channel, 0, "load_agents");
  return !stubs_.empty();
}

void LoadRun::MakeIdentities() {
  absl::BitGen random;
  for (int i = 0; i < config_.members; ++i) {
    agents_[i].identity = MemberIdentityFor(config_.cluster, "load-", i, random);
  }
}

void LoadRun::LaunchRegister(int index) {
  auto* call = new RegisterCall;
  *call->request.mutable_identity() = agents_[index].identity;
  v1::Capabilities* capabilities = call->request.mutable_capabilities();
  capabilities->add_backends("cpu:gloo");
  capabilities->set_device_type("cpu");
  call->context.set_deadline(RpcDeadline());
  call->start_ns = NowNs();
  int64_t unset = 0;
  first_register_ns_.compare_exchange_strong(unset, call->start_ns);
  StubFor(index)->async()->Register(
      &call->context, &call->request, &call->response,
      [this, index, call](grpc::Status status) { OnRegistered(index, call, status); });
}

void LoadRun::OnRegistered(int index, RegisterCall* call, const grpc::Status& status) {
  const int64_t now = NowNs();
  Agent& agent = agents_[index];
  agent.registered_ns = now;
  if (status.ok()) {
    agent.credentials.set_cluster(config_.cluster);
    agent.credentials.set_member_id(call->response.member_id());
    agent.credentials.set_session_token(call->response.session_token());
    agent.watch = std::make_unique<Watch>(this, index);
    watches_started_.fetch_add(1);
    agent.watch->Start(StubFor(index), agent.credentials);
  } else {
    register_errors_.fetch_add(1);
  }
  {
    absl::MutexLock lock(&mu_);
    ++registered_;
    register_latencies_ns_.push_back(now - call->start_ns);
    if (!status.ok() && first_error_.empty()) {
      first_error_ = absl::StrCat("Register: ", status.error_code(), " ", status.error_message());
    }
  }
  delete call;
  const int next = next_register_.fetch_add(1);
  if (next < config_.members) LaunchRegister(next);
}

void LoadRun::OnPlan(int index, const v1::WatchPlanResponse& response) {
  Agent& agent = agents_[index];
  const int64_t now = NowNs();
  int64_t unset = 0;
  if (!agent.plan_ns.compare_exchange_strong(unset, now)) {
    extra_plans_.fetch_add(1);
    return;
  }
  agent.rank = response.rank();
  agent.epoch = response.plan().epoch();
  if (agent.epoch <= 0) plan_errors_.fetch_add(1);
  absl::MutexLock lock(&mu_);
  ++plan_holders_;
}

void LoadRun::OnWatchDone(int index, const grpc::Status& status) {
  // Before teardown any end of a stream is an error; during it, only CANCELLED is expected.
  const bool expected =
      cancelling_.load() && (status.error_code() == grpc::StatusCode::CANCELLED || status.ok());
  absl::MutexLock lock(&mu_);
  ++watches_done_;
  if (!expected) {
    watch_errors_.fetch_add(1);
    if (first_error_.empty()) {
      first_error_ = absl::StrCat("WatchPlan of member ", index, ": ", status.error_code(), " ",
                                  status.error_message());
    }
  }
}

void LoadRun::SendHeartbeat(int index) {
  const Agent& agent = agents_[index];
  if (agent.credentials.member_id().empty()) return;  // its registration failed
  auto* call = new HeartbeatCall;
  *call->request.mutable_member() = agent.credentials;
  call->request.set_epoch(agent.epoch);
  call->context.set_deadline(RpcDeadline());
  const int64_t in_flight = heartbeats_in_flight_.fetch_add(1) + 1;
  int64_t peak = heartbeats_peak_in_flight_.load();
  while (in_flight > peak && !heartbeats_peak_in_flight_.compare_exchange_weak(peak, in_flight)) {
  }
  call->start_ns = NowNs();
  StubFor(index)->async()->Heartbeat(
      &call->context, &call->request, &call->response,
      [this, call](grpc::Status status) { OnHeartbeat(call, status); });
}

void LoadRun::OnHeartbeat(HeartbeatCall* call, const grpc::Status& status) {
  const int64_t latency = NowNs() - call->start_ns;
  {
    absl::MutexLock lock(&mu_);
    if (status.ok()) {
      heartbeat_latencies_ns_.push_back(latency);
    } else {
      heartbeat_errors_.fetch_add(1);
      if (first_error_.empty()) {
        first_error_ =
            absl::StrCat("Heartbeat: ", status.error_code(), " ", status.error_message());
      }
    }
  }
  delete call;
  heartbeats_in_flight_.fetch_sub(1);
}

void LoadRun::CancelWatches() {
  cancelling_.store(true);
  for (Agent& agent : agents_) {
    if (agent.watch != nullptr) agent.watch->Cancel();
  }
  const int started = watches_started_.load();
  auto all_done = [this, started]()
                      ABSL_SHARED_LOCKS_REQUIRED(mu_) { return watches_done_ >= started; };
  absl::MutexLock lock(&mu_);
  if (!mu_.AwaitWithTimeout(absl::Condition(&all_done), absl::Seconds(30))) {
    std::fprintf(stderr, "load_agents: %d of %d plan streams did not end after cancel\n",
                 started - watches_done_, started);
  }
}

int LoadRun::Run() {
  RaiseOpenFilesLimit("load_agents");
  if (!Connect()) return 1;
  MakeIdentities();
  RegisterAll();
  const bool all_hold_plan = AwaitPlans();
  HeartbeatPhase heartbeats;
  if (all_hold_plan && config_.duration_s > 0) heartbeats = RunHeartbeats();
  if (heartbeats.client_threads < 0) heartbeats.client_threads = OwnThreads();

  CancelWatches();
  PrintResult(heartbeats);
  return Failed(all_hold_plan) ? 1 : 0;
}

// Registration: `concurrency` calls in flight, each answer launches the next; returns once every
// call is answered.
void LoadRun::RegisterAll() {
  {
    absl::MutexLock lock(&mu_);
    register_latencies_ns_.reserve(config_.members);
  }
  const int initial = std::min(config_.concurrency, config_.members);
  next_register_.store(initial);
  for (int i = 0; i < initial; ++i) LaunchRegister(i);
  {
    auto all_answered = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return registered_ >= config_.members;
    };
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&all_answered));  // every call has a deadline
  }
  std::fprintf(stderr, "load_agents: %d registrations answered\n", config_.members);
}

// Plan delivery: true when every member registered and holds a plan within --plan_timeout_s.
bool LoadRun::AwaitPlans() {
  bool all_hold_plan = false;
  {
    const int expected = config_.members - static_cast<int>(register_errors_.load());
    auto all_hold = [this, expected]()
                        ABSL_SHARED_LOCKS_REQUIRED(mu_) { return plan_holders_ >= expected; };
    absl::MutexLock lock(&mu_);
    all_hold_plan = mu_.AwaitWithTimeout(absl::Condition(&all_hold), config_.plan_timeout) &&
                    register_errors_.load() == 0;
  }
  std::fprintf(stderr, "load_agents: plan delivery %s\n",
               all_hold_plan ? "complete" : "INCOMPLETE");
  return all_hold_plan;
}

// Heartbeats: member i of round r is due at start + (r * members + i) * interval / members,
// so calls are spread evenly over every interval. Returns once every call is answered or a
// second after the last call's deadline.
HeartbeatPhase LoadRun::RunHeartbeats() {
  HeartbeatPhase phase;
  const int64_t interval_ns = int64_t{config_.heartbeat_interval_ms} * 1000000;
  const int64_t rounds = std::max<int64_t>(
      1, static_cast<int64_t>(config_.duration_s * 1000 / config_.heartbeat_interval_ms));
  const int64_t total = rounds * config_.members;
  {
    absl::MutexLock lock(&mu_);
    heartbeat_latencies_ns_.reserve(total);
  }
  const int64_t start = NowNs();
  auto due = [&](int64_t k) {
    return start + static_cast<int64_t>(static_cast<double>(k) * static_cast<double>(interval_ns) /
                                        config_.members);
  };
  int64_t k = 0;
  while (k < total) {
    const int64_t now = NowNs();
    while (k < total && due(k) <= now) {
      phase.scheduler_lag_max_ns = std::max(phase.scheduler_lag_max_ns, now - due(k));
      SendHeartbeat(static_cast<int>(k % config_.members));
      ++phase.heartbeats_sent;
      ++k;
    }
    if (k == total / 2) phase.client_threads = OwnThreads();
    if (k < total) {
      std::this_thread::sleep_for(std::chrono::nanoseconds(std::max<int64_t>(due(k) - NowNs(), 0)));
    }
  }
  const absl::Time drain_deadline = absl::Now() + config_.rpc_timeout + absl::Seconds(1);
  while (heartbeats_in_flight_.load() > 0 && absl::Now() < drain_deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  std::fprintf(stderr, "load_agents: %" PRId64 " heartbeats sent\n", phase.heartbeats_sent);
  return phase;
}

// Whether the run failed: a member without a plan, any RPC error, a wrong plan or a heartbeat
// still unanswered; prints the first error then.
bool LoadRun::Failed(bool all_hold_plan) {
  absl::MutexLock lock(&mu_);
  const bool failed = !all_hold_plan || register_errors_.load() > 0 || watch_errors_.load() > 0 ||
                      heartbeat_errors_.load() > 0 || plan_errors_.load() > 0 ||
                      heartbeats_in_flight_.load() > 0;
  if (failed && !first_error_.empty()) {
    std::fprintf(stderr, "load_agents: first error: %s\n", first_error_.c_str());
  }
  return failed;
}

void LoadRun::PrintResult(const HeartbeatPhase& heartbeats) {
  // Timings of registration and plan delivery, and a check of the ranks handed out.
  int64_t last_registered_ns = 0;
  int64_t first_plan_ns = 0;
  int64_t last_plan_ns = 0;
  int64_t holders = 0;
  int64_t spares = 0;
  std::vector<char> rank_seen(config_.world, 0);
  for (const Agent& agent : agents_) {
    last_registered_ns = std::max(last_registered_ns, agent.registered_ns);
    const int64_t plan_ns = agent.plan_ns.load();
    if (plan_ns == 0) continue;
    ++holders;
    first_plan_ns = first_plan_ns == 0 ? plan_ns : std::min(first_plan_ns, plan_ns);
    last_plan_ns = std::max(last_plan_ns, plan_ns);
    if (agent.rank == -1) {
      ++spares;
    } else if (agent.rank < 0 || agent.rank >= config_.world || rank_seen[agent.rank]++ != 0) {
      plan_errors_.fetch_add(1);
    }
  }
  if (holders == config_.members && spares != config_.members - config_.world) {
    plan_errors_.fetch_add(1);
  }
  const int64_t first_register_ns = first_register_ns_.load();

  absl::MutexLock lock(&mu_);
  std::sort(register_latencies_ns_.begin(), register_latencies_ns_.end());
  std::sort(heartbeat_latencies_ns_.begin(), heartbeat_latencies_ns_.end());
  const double register_s = Seconds(last_registered_ns - first_register_ns);
  const bool all_hold = holders == config_.members;
  std::string json = absl::StrFormat(
      "{\"members\":%d,\"world\":%d,\"channels\":%d,\"concurrency\":%d,"
      "\"register_s\":%.4f,\"register_per_s\":%.1f,"
      "\"register_latency_p50_ms\":%.3f,\"register_latency_p99_ms\":%.3f,"
      "\"plan_holders\":%d,\"spares\":%d,\"all_hold_plan\":%s,"
      "\"first_plan_after_last_register_s\":%.4f,\"all_plans_after_last_register_s\":%s,"
      "\"all_plans_after_first_register_s\":%s,",
      config_.members, config_.world, static_cast<int>(stubs_.size()), config_.concurrency,
      register_s, register_s > 0 ? config_.members / register_s : 0.0,
      Millis(Percentile(register_latencies_ns_, 0.50)),
      Millis(Percentile(register_latencies_ns_, 0.99)), holders, spares,
      all_hold ? "true" : "false", holders > 0 ? Seconds(first_plan_ns - last_registered_ns) : 0.0,
      all_hold ? absl::StrFormat("%.4f", Seconds(last_plan_ns - last_registered_ns)) : "null",
      all_hold ? absl::StrFormat("%.4f", Seconds(last_plan_ns - first_register_ns)) : "null");
  absl::StrAppendFormat(
      &json,
      "\"heartbeat_interval_ms\":%d,\"duration_s\":%.1f,\"heartbeats\":%d,"
      "\"heartbeats_answered\":%d,\"heartbeat_p50_ms\":%.3f,\"heartbeat_p99_ms\":%.3f,"
      "\"heartbeat_max_ms\":%.3f,\"heartbeat_peak_in_flight\":%d,\"scheduler_lag_max_ms\":%.3f,"
      "\"client_threads\":%d,\"extra_plans\":%d,"
      "\"errors\":{\"register\":%d,\"watch\":%d,\"heartbeat\":%d,\"plan\":%d}}",
      config_.heartbeat_interval_ms, config_.duration_s, heartbeats.heartbeats_sent,
      static_cast<int64_t>(heartbeat_latencies_ns_.size()),
      Millis(Percentile(heartbeat_latencies_ns_, 0.50)),
      Millis(Percentile(heartbeat_latencies_ns_, 0.99)),
      Millis(heartbeat_latencies_ns_.empty() ? 0 : heartbeat_latencies_ns_.back()),
      heartbeats_peak_in_flight_.load(), Millis(heartbeats.scheduler_lag_max_ns),
      heartbeats.client_threads, extra_plans_.load(), register_errors_.load(), watch_errors_.load(),
      heartbeat_errors_.load(), plan_errors_.load());
  std::printf("RESULT %s\n", json.c_str());
  std::fflush(stdout);
}

}  // namespace
}  // namespace splitd::load

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("load_agents: simulates many splitd agents from one process");
  absl::ParseCommandLine(argc, argv);
  // As in the daemon's main: Debian's Abseil tracks every Mutex's lock order, which this
  // process (100,000 simulated agents on the daemon's cores) cannot afford.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  splitd::load::Config config;
  config.daemon = absl::GetFlag(FLAGS_daemon);
  config.cluster = absl::GetFlag(FLAGS_cluster);
  config.members = absl::GetFlag(FLAGS_members);
  config.world = absl::GetFlag(FLAGS_world) > 0 ? absl::GetFlag(FLAGS_world) : config.members;
  config.heartbeat_interval_ms = absl::GetFlag(FLAGS_heartbeat_interval_ms);
  config.duration_s = absl::GetFlag(FLAGS_duration_s);
  config.concurrency = absl::GetFlag(FLAGS_concurrency);
  config.streams_per_channel = absl::GetFlag(FLAGS_streams_per_channel);
  config.plan_timeout = absl::Seconds(absl::GetFlag(FLAGS_plan_timeout_s));
  config.rpc_timeout = absl::Seconds(absl::GetFlag(FLAGS_rpc_timeout_s));
  if (config.members < 1 || config.world > config.members || config.concurrency < 1 ||
      config.heartbeat_interval_ms < 1 || config.streams_per_channel < 1 || config.duration_s < 0) {
    std::fprintf(stderr,
                 "load_agents: need --members >= 1, --world <= --members, --concurrency >= 1, "
                 "--heartbeat_interval_ms >= 1, --streams_per_channel >= 1, --duration_s >= 0\n");
    return 2;
  }
  splitd::load::LoadRun run(config);
  return run.Run();
}
