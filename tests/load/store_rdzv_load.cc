// store_rdzv_load: simulated ranks of one world doing, against a real splitd daemon, what
// torch.distributed.init_process_group does through its store for an NCCL world.
//
// Members [--first, --first + --members) of a world of --world ranks register (node
// "node-<i/8>", local index i%8, a fresh incarnation each), open one WatchPlan stream each to
// learn their epoch and rank, and heartbeat at the interval Register answers for as long as the
// program runs. Once every member of this process holds its plan the program prints one
// `PLANNED {json}` line and, with --wait_for_go, waits for a line on stdin, so that several
// processes can start the store phase together. Then every member at once, on its own session:
//
//   rank 0:    KvSet("unique_id", --id_bytes bytes)
//   every rank: KvGet("unique_id")   (waits in the daemon until the key exists)
//   every rank: KvAdd("joined", 1); the rank whose call returns --world sets "all_joined"
//   every rank: KvGet("all_joined")  (waits until the count reached --world)
//
// all in the cluster's current epoch. Everything runs on gRPC's callback API over a few
// channels, so one process holds thousands of waiting calls on a handful of threads. Prints one
// `RESULT {json}` line with steady-clock instants (CLOCK_MONOTONIC, comparable between processes
// of one machine); exits 1 when a call failed or a rank did not finish, 2 on bad flags.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <iostream>
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
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "splitd/v1/agent_service.grpc.pb.h"
#include "tests/load/agent_client.h"

ABSL_FLAG(std::string, daemon, "127.0.0.1:7070", "splitd address HOST:PORT");
ABSL_FLAG(std::string, cluster, "rdzv",
          "cluster to join (its topology, of world --world, applied)");
ABSL_FLAG(int, world, 1000, "world size of the cluster");
ABSL_FLAG(int, first, 0, "index of this process's first member");
ABSL_FLAG(int, members, 0, "members simulated by this process (0: --world - --first)");
ABSL_FLAG(int, concurrency, 256, "Register calls in flight at most");
ABSL_FLAG(int, streams_per_channel, 500, "members per channel (one TCP connection each)");
ABSL_FLAG(int, id_bytes, 128, "size of the unique id rank 0 publishes");
ABSL_FLAG(bool, heartbeats, true, "heartbeat every member at the interval Register answers");
ABSL_FLAG(bool, wait_for_go, false,
          "after PLANNED, wait for a line on stdin before the store phase");
ABSL_FLAG(double, plan_timeout_s, 120, "how long to wait for every member to hold its plan");
ABSL_FLAG(double, rpc_timeout_s, 30, "deadline of Register, Heartbeat, KvSet and KvAdd");
ABSL_FLAG(double, wait_timeout_s, 120, "deadline of each waiting KvGet, and of the store phase");

namespace splitd::load {
namespace {

constexpr char kUniqueIdKey[] = "unique_id";
constexpr char kCounterKey[] = "joined";
constexpr char kAllJoinedKey[] = "all_joined";

// The unique id rank 0 publishes; every rank checks it received exactly this.
std::string UniqueId(int bytes) {
  std::string id(static_cast<size_t>(bytes), '\0');
  for (int i = 0; i < bytes; ++i) id[i] = static_cast<char>((i * 37 + 11) & 0xff);
  return id;
}

struct Config {
  std::string daemon;
  std::string cluster;
  int world = 0;
  int first = 0;
  int members = 0;
  int concurrency = 0;
  int streams_per_channel = 0;
  int id_bytes = 0;
  bool heartbeats = true;
  bool wait_for_go = false;
  absl::Duration plan_timeout;
  absl::Duration rpc_timeout;
  absl::Duration wait_timeout;
};

class StoreRun;
using Watch = PlanWatch<StoreRun>;

// One simulated member. Each field is written by one phase's callbacks (which gRPC runs one at
// a time per member, since a member has one store call in flight) and read after that phase.
struct Member {
  v1::MemberIdentity identity;
  v1::MemberCredentials credentials;
  std::atomic<bool> registered{false};
  std::atomic<int64_t> epoch{0};
  std::atomic<int64_t> rank{-2};  // -2: no plan yet
  std::unique_ptr<Watch> watch;
  int64_t start_ns = 0;  // first store call sent
  int64_t id_ns = 0;     // unique id received
  int64_t added_ns = 0;  // KvAdd answered
  int64_t done_ns = 0;   // all_joined received
  bool failed = false;
};

class StoreRun {
 public:
  explicit StoreRun(const Config& config) : config_(config), members_(config.members) {}
  int Run();

  void OnPlan(int index, const v1::WatchPlanResponse& response);
  void OnWatchDone(int index, const grpc::Status& status);

 private:
  bool Connect();
  void LaunchRegister(int index);
  void HeartbeatLoop();
  void CancelWatches();

  // The store phase of one member, one call after another.
  void StartRank(int index);
  void GetUniqueId(int index);
  void Add(int index);
  void SetAllJoined(int index);
  void GetAllJoined(int index);
  void Finish(int index, const grpc::Status& status, const char* step);

  v1::AgentService::Stub* StubFor(int index) { return stubs_[index % stubs_.size()].get(); }
  void Note(const char* step, const grpc::Status& status);
  bool AwaitCount(const int* counter, int target, absl::Duration timeout);
  void PrintResult(int64_t go_ns, int64_t client_threads);

  const Config config_;
  const std::string unique_id_ = UniqueId(config_.id_bytes);
  std::vector<std::unique_ptr<v1::AgentService::Stub>> stubs_;
  std::vector<Member> members_;

  std::atomic<int> next_register_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> cancelling_{false};
  std::atomic<int64_t> heartbeats_in_flight_{0};
  std::atomic<int64_t> heartbeats_sent_{0};
  std::atomic<int64_t> heartbeat_errors_{0};
  std::atomic<int64_t> all_joined_setters_{0};
  std::atomic<int64_t> store_calls_{0};

  absl::Mutex mu_;
  int registered_ ABSL_GUARDED_BY(mu_) = 0;
  int register_errors_ ABSL_GUARDED_BY(mu_) = 0;
  int plan_holders_ ABSL_GUARDED_BY(mu_) = 0;
  int watches_started_ ABSL_GUARDED_BY(mu_) = 0;
  int watches_done_ ABSL_GUARDED_BY(mu_) = 0;
  int watch_errors_ ABSL_GUARDED_BY(mu_) = 0;
  int finished_ ABSL_GUARDED_BY(mu_) = 0;  // store phase over, done or failed
  int store_errors_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t first_register_ns_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_register_ns_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_plan_ns_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t heartbeat_interval_ms_ ABSL_GUARDED_BY(mu_) = 0;
  std::string first_error_ ABSL_GUARDED_BY(mu_);
};

void StoreRun::Note(const char* step, const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  if (first_error_.empty()) {
    first_error_ = absl::StrCat(step, ": ", status.error_code(), " ", status.error_message());
  }
}

bool StoreRun::AwaitCount(const int* counter, int target, absl::Duration timeout) {
  auto reached = [counter, target]() { return *counter >= target; };
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
}

bool StoreRun::Connect() {
  stubs_ = ConnectStubs(config_.daemon, config_.members, config_.streams_per_channel, config_.first,
                        "store_rdzv_load");
  return !stubs_.empty();
}

void StoreRun::LaunchRegister(int index) {
  using RegisterCall = UnaryCall<v1::RegisterRequest, v1::RegisterResponse>;
  auto* call = new RegisterCall;
  *call->request.mutable_identity() = members_[index].identity;
  call->request.mutable_capabilities()->add_backends("cpu:gloo");
  call->request.mutable_capabilities()->set_device_type("cpu");
  call->context.set_deadline(DeadlineIn(config_.rpc_timeout));
  {
    absl::MutexLock lock(&mu_);
    if (first_register_ns_ == 0) first_register_ns_ = NowNs();
  }
  StubFor(index)->async()->Register(
      &call->context, &call->request, &call->response, [this, index, call](grpc::Status status) {
        Member& member = members_[index];
        if (status.ok()) {
          member.credentials.set_cluster(config_.cluster);
          member.credentials.set_member_id(call->response.member_id());
          member.credentials.set_session_token(call->response.session_token());
          member.registered.store(true);
          member.watch = std::make_unique<Watch>(this, index);
          member.watch->Start(StubFor(index), member.credentials);
        } else {
          Note("Register", status);
        }
        {
          absl::MutexLock lock(&mu_);
          ++registered_;
          last_register_ns_ = NowNs();
          if (status.ok()) {
            ++watches_started_;
            heartbeat_interval_ms_ = call->response.heartbeat_interval_ms();
          } else {
            ++register_errors_;
          }
        }
        delete call;
        const int next = next_register_.fetch_add(1);
        if (next < config_.members) LaunchRegister(next);
      });
}

void StoreRun::OnPlan(int index, const v1::WatchPlanResponse& response) {
  Member& member = members_[index];
  const bool first = member.rank.load() == -2;
  member.epoch.store(response.plan().epoch());
  member.rank.store(response.rank());
  absl::MutexLock lock(&mu_);
  if (first) {
    ++plan_holders_;
    last_plan_ns_ = NowNs();
  } else if (first_error_.empty()) {
    // A second epoch would drop the space the store phase works in.
    first_error_ = absl::StrCat("member ", config_.first + index, " received epoch ",
                                response.plan().epoch(), " after its first plan");
  }
}

void StoreRun::OnWatchDone(int index, const grpc::Status& status) {
  const bool expected =
      cancelling_.load() && (status.ok() || status.error_code() == grpc::StatusCode::CANCELLED);
  absl::MutexLock lock(&mu_);
  ++watches_done_;
  if (!expected) {
    ++watch_errors_;
    if (first_error_.empty()) {
      first_error_ = absl::StrCat("WatchPlan of member ", config_.first + index, ": ",
                                  status.error_code(), " ", status.error_message());
    }
  }
}

// Member k % members of round k / members is due at start + k * interval / members, so the
// heartbeats are spread evenly over every interval, as independent agents would send them.
void StoreRun::HeartbeatLoop() {
  using HeartbeatCall = UnaryCall<v1::HeartbeatRequest, v1::HeartbeatResponse>;
  int64_t interval_ms = 0;
  {
    auto known = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return heartbeat_interval_ms_ > 0 || registered_ >= config_.members;
    };
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&known));
    interval_ms = heartbeat_interval_ms_;
  }
  if (interval_ms <= 0) return;  // nobody registered
  const double step_ns = static_cast<double>(interval_ms) * 1e6 / config_.members;
  const int64_t start = NowNs();
  for (int64_t k = 0; !stopping_.load(); ++k) {
    const int64_t due = start + static_cast<int64_t>(static_cast<double>(k) * step_ns);
    const int64_t wait = due - NowNs();
    if (wait > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(wait));
    Member& member = members_[k % config_.members];
    if (!member.registered.load()) continue;
    auto* call = new HeartbeatCall;
    *call->request.mutable_member() = member.credentials;
    call->request.set_epoch(member.epoch.load());
    call->context.set_deadline(DeadlineIn(config_.rpc_timeout));
    heartbeats_in_flight_.fetch_add(1);
    heartbeats_sent_.fetch_add(1);
    StubFor(static_cast<int>(k % config_.members))
        ->async()
        ->Heartbeat(&call->context, &call->request, &call->response,
                    [this, call](grpc::Status status) {
                      if (!status.ok()) {
                        heartbeat_errors_.fetch_add(1);
                        Note("Heartbeat", status);
                      }
                      delete call;
                      heartbeats_in_flight_.fetch_sub(1);
                    });
  }
}

void StoreRun::StartRank(int index) {
  using SetCall = UnaryCall<v1::KvSetRequest, v1::KvSetResponse>;
  Member& member = members_[index];
  member.start_ns = NowNs();
  if (member.rank.load() != 0) {
    GetUniqueId(index);
    return;
  }
  auto* call = new SetCall;
  *call->request.mutable_member() = member.credentials;
  call->request.set_epoch(member.epoch.load());
  call->request.set_key(kUniqueIdKey);
  call->request.set_value(unique_id_);
  call->context.set_deadline(DeadlineIn(config_.rpc_timeout));
  store_calls_.fetch_add(1);
  StubFor(index)->async()->KvSet(&call->context, &call->request, &call->response,
                                 [this, index, call](grpc::Status status) {
                                   delete call;
                                   if (!status.ok())
                                     return Finish(index, status, "KvSet unique_id");
                                   GetUniqueId(index);
                                 });
}

void StoreRun::GetUniqueId(int index) {
  using GetCall = UnaryCall<v1::KvGetRequest, v1::KvGetResponse>;
  Member& member = members_[index];
  auto* call = new GetCall;
  *call->request.mutable_member() = member.credentials;
  call->request.set_epoch(member.epoch.load());
  call->request.add_keys(kUniqueIdKey);
  call->context.set_deadline(DeadlineIn(config_.wait_timeout));
  store_calls_.fetch_add(1);
  StubFor(index)->async()->KvGet(
      &call->context, &call->request, &call->response, [this, index, call](grpc::Status status) {
        const bool intact = status.ok() && call->response.values_size() == 1 &&
                            call->response.values(0) == unique_id_;
        delete call;
        if (!status.ok()) return Finish(index, status, "KvGet unique_id");
        if (!intact) {
          return Finish(index, grpc::Status(grpc::StatusCode::DATA_LOSS, "wrong unique id"),
                        "KvGet unique_id");
        }
        members_[index].id_ns = NowNs();
        Add(index);
      });
}

void StoreRun::Add(int index) {
  using AddCall = UnaryCall<v1::KvAddRequest, v1::KvAddResponse>;
  Member& member = members_[index];
  auto* call = new AddCall;
  *call->request.mutable_member() = member.credentials;
  call->request.set_epoch(member.epoch.load());
  call->request.set_key(kCounterKey);
  call->request.set_delta(1);
  call->context.set_deadline(DeadlineIn(config_.rpc_timeout));
  store_calls_.fetch_add(1);
  StubFor(index)->async()->KvAdd(
      &call->context, &call->request, &call->response, [this, index, call](grpc::Status status) {
        const int64_t value = call->response.value();
        delete call;
        if (!status.ok()) return Finish(index, status, "KvAdd joined");
        members_[index].added_ns = NowNs();
        if (value > config_.world) {
          return Finish(index,
                        grpc::Status(grpc::StatusCode::DATA_LOSS,
                                     absl::StrCat("counter passed the world: ", value)),
                        "KvAdd joined");
        }
        if (value == config_.world) {
          SetAllJoined(index);
        } else {
          GetAllJoined(index);
        }
      });
}

void StoreRun::SetAllJoined(int index) {
  using SetCall = UnaryCall<v1::KvSetRequest, v1::KvSetResponse>;
  Member& member = members_[index];
  all_joined_setters_.fetch_add(1);
  auto* call = new SetCall;
  *call->request.mutable_member() = member.credentials;
  call->request.set_epoch(member.epoch.load());
  call->request.set_key(kAllJoinedKey);
  call->request.set_value("1");
  call->context.set_deadline(DeadlineIn(config_.rpc_timeout));
  store_calls_.fetch_add(1);
  StubFor(index)->async()->KvSet(&call->context, &call->request, &call->response,
                                 [this, index, call](grpc::Status status) {
                                   delete call;
                                   if (!status.ok())
                                     return Finish(index, status, "KvSet all_joined");
                                   GetAllJoined(index);
                                 });
}

void StoreRun::GetAllJoined(int index) {
  using GetCall = UnaryCall<v1::KvGetRequest, v1::KvGetResponse>;
  Member& member = members_[index];
  auto* call = new GetCall;
  *call->request.mutable_member() = member.credentials;
  call->request.set_epoch(member.epoch.load());
  call->request.add_keys(kAllJoinedKey);
  call->context.set_deadline(DeadlineIn(config_.wait_timeout));
  store_calls_.fetch_add(1);
  StubFor(index)->async()->KvGet(&call->context, &call->request, &call->response,
                                 [this, index, call](grpc::Status status) {
                                   delete call;
                                   if (status.ok()) members_[index].done_ns = NowNs();
                                   Finish(index, status, "KvGet all_joined");
                                 });
}

void StoreRun::Finish(int index, const grpc::Status& status, const char* step) {
  if (!status.ok()) {
    members_[index].failed = true;
    Note(step, status);
  }
  absl::MutexLock lock(&mu_);
  ++finished_;
  if (!status.ok()) ++store_errors_;
}

void StoreRun::CancelWatches() {
  cancelling_.store(true);
  for (Member& member : members_) {
    if (member.watch != nullptr) member.watch->Cancel();
  }
  int started = 0;
  {
    absl::MutexLock lock(&mu_);
    started = watches_started_;
  }
  if (!AwaitCount(&watches_done_, started, absl::Seconds(30))) {
    std::fprintf(stderr, "store_rdzv_load: plan streams did not all end after cancel\n");
  }
}

int StoreRun::Run() {
  RaiseOpenFilesLimit("store_rdzv_load");
  if (!Connect()) return 1;
  absl::BitGen random;
  for (int i = 0; i < config_.members; ++i) {
    members_[i].identity = MemberIdentityFor(config_.cluster, "rdzv-", config_.first + i, random);
  }

  std::thread heartbeats;
  if (config_.heartbeats) heartbeats = std::thread([this] { HeartbeatLoop(); });
  const int initial = std::min(config_.concurrency, config_.members);
  next_register_.store(initial);
  for (int i = 0; i < initial; ++i) LaunchRegister(i);
  AwaitCount(&registered_, config_.members, absl::InfiniteDuration());  // calls have deadlines
  const bool planned = AwaitCount(&plan_holders_, config_.members, config_.plan_timeout);
  int errors_before = 0;
  {
    absl::MutexLock lock(&mu_);
    errors_before = register_errors_ + watch_errors_;
    std::printf("PLANNED {\"members\":%d,\"register_s\":%.4f,\"plans\":%d,\"ok\":%s}\n",
                config_.members, (last_register_ns_ - first_register_ns_) / 1e9, plan_holders_,
                planned && errors_before == 0 ? "true" : "false");
    std::fflush(stdout);
  }

  int64_t go_ns = 0;
  bool all_finished = false;
  int64_t client_threads = -1;
  if (planned && errors_before == 0) {
    if (config_.wait_for_go) {
      std::string line;
      std::getline(std::cin, line);
    }
    go_ns = NowNs();
    for (int i = 0; i < config_.members; ++i) StartRank(i);
    client_threads = OwnThreads();
    all_finished = AwaitCount(&finished_, config_.members, config_.wait_timeout + absl::Seconds(5));
  }
  if (client_threads < 0) client_threads = OwnThreads();

  stopping_.store(true);
  if (heartbeats.joinable()) heartbeats.join();
  const absl::Time drain = absl::Now() + config_.rpc_timeout + absl::Seconds(1);
  while (heartbeats_in_flight_.load() > 0 && absl::Now() < drain) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  CancelWatches();
  if (!all_finished && go_ns != 0) {
    // Calls still waiting hold pointers into members_: leave without tearing them down.
    PrintResult(go_ns, client_threads);
    std::fprintf(stderr, "store_rdzv_load: not every rank finished the store phase\n");
    std::fflush(stderr);
    std::_Exit(1);
  }
  PrintResult(go_ns, client_threads);
  absl::MutexLock lock(&mu_);
  const bool failed = !planned || errors_before > 0 || store_errors_ > 0 || watch_errors_ > 0 ||
                      heartbeat_errors_.load() > 0 || !all_finished;
  if (!first_error_.empty()) {
    std::fprintf(stderr, "store_rdzv_load: first error: %s\n", first_error_.c_str());
  }
  return failed ? 1 : 0;
}

void StoreRun::PrintResult(int64_t go_ns, int64_t client_threads) {
  int64_t first_start = 0, last_start = 0, last_id = 0, first_added = 0, last_added = 0;
  int64_t first_done = 0, last_done = 0;
  int done = 0;
  auto low = [](int64_t& slot, int64_t v) { slot = slot == 0 ? v : std::min(slot, v); };
  for (const Member& member : members_) {
    if (member.start_ns == 0) continue;
    low(first_start, member.start_ns);
    last_start = std::max(last_start, member.start_ns);
    last_id = std::max(last_id, member.id_ns);
    if (member.added_ns != 0) low(first_added, member.added_ns);
    last_added = std::max(last_added, member.added_ns);
    if (member.done_ns == 0) continue;
    ++done;
    low(first_done, member.done_ns);
    last_done = std::max(last_done, member.done_ns);
  }
  absl::MutexLock lock(&mu_);
  std::printf(
      "RESULT {\"world\":%d,\"first\":%d,\"members\":%d,\"channels\":%d,"
      "\"register_s\":%.4f,\"first_register_ns\":%" PRId64 ",\"last_plan_ns\":%" PRId64
      ","
      "\"go_ns\":%" PRId64 ",\"first_start_ns\":%" PRId64 ",\"last_start_ns\":%" PRId64
      ","
      "\"last_id_ns\":%" PRId64 ",\"first_added_ns\":%" PRId64 ",\"last_added_ns\":%" PRId64
      ","
      "\"first_done_ns\":%" PRId64 ",\"last_done_ns\":%" PRId64
      ",\"done\":%d,"
      "\"all_joined_setters\":%" PRId64 ",\"store_calls\":%" PRId64 ",\"heartbeats\":%" PRId64
      ","
      "\"client_threads\":%" PRId64
      ",\"errors\":{\"register\":%d,\"watch\":%d,\"heartbeat\":%" PRId64
      ",\"store\":%d},\"first_error\":\"%s\"}\n",
      config_.world, config_.first, config_.members, static_cast<int>(stubs_.size()),
      (last_register_ns_ - first_register_ns_) / 1e9, first_register_ns_, last_plan_ns_, go_ns,
      first_start, last_start, last_id, first_added, last_added, first_done, last_done, done,
      all_joined_setters_.load(), store_calls_.load(), heartbeats_sent_.load(), client_threads,
      register_errors_, watch_errors_, heartbeat_errors_.load(), store_errors_,
      absl::StrReplaceAll(first_error_, {{"\\", "\\\\"}, {"\"", "'"}, {"\n", " "}}).c_str());
  std::fflush(stdout);
}

}  // namespace
}  // namespace splitd::load

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "store_rdzv_load: simulated ranks run init_process_group's store rendezvous on splitd");
  absl::ParseCommandLine(argc, argv);
  splitd::load::Config config;
  config.daemon = absl::GetFlag(FLAGS_daemon);
  config.cluster = absl::GetFlag(FLAGS_cluster);
  config.world = absl::GetFlag(FLAGS_world);
  config.first = absl::GetFlag(FLAGS_first);
  config.members =
      absl::GetFlag(FLAGS_members) > 0 ? absl::GetFlag(FLAGS_members) : config.world - config.first;
  config.concurrency = absl::GetFlag(FLAGS_concurrency);
  config.streams_per_channel = absl::GetFlag(FLAGS_streams_per_channel);
  config.id_bytes = absl::GetFlag(FLAGS_id_bytes);
  config.heartbeats = absl::GetFlag(FLAGS_heartbeats);
  config.wait_for_go = absl::GetFlag(FLAGS_wait_for_go);
  config.plan_timeout = absl::Seconds(absl::GetFlag(FLAGS_plan_timeout_s));
  config.rpc_timeout = absl::Seconds(absl::GetFlag(FLAGS_rpc_timeout_s));
  config.wait_timeout = absl::Seconds(absl::GetFlag(FLAGS_wait_timeout_s));
  if (config.world < 1 || config.first < 0 || config.members < 1 ||
      config.first + config.members > config.world || config.concurrency < 1 ||
      config.streams_per_channel < 1 || config.id_bytes < 1) {
    std::fprintf(stderr,
                 "store_rdzv_load: need --world >= 1, 0 <= --first, 1 <= --members, "
                 "--first + --members <= --world, --concurrency >= 1, "
                 "--streams_per_channel >= 1, --id_bytes >= 1\n");
    return 2;
  }
  splitd::load::StoreRun run(config);
  return run.Run();
}
