#ifndef SPLITD_TESTS_LOAD_AGENT_CLIENT_H_
#define SPLITD_TESTS_LOAD_AGENT_CLIENT_H_

// The client side shared by the load programs that simulate many agents in one process: gRPC
// channels to the daemon, member identities, the WatchPlan reactor and process statistics.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "splitd/v1/agent_service.grpc.pb.h"

namespace splitd::load {

// Nanoseconds on the steady clock (CLOCK_MONOTONIC, comparable between processes of a machine).
int64_t NowNs();

// A gRPC deadline `timeout` from now.
std::chrono::system_clock::time_point DeadlineIn(absl::Duration timeout);

// Threads of this process, from /proc/self/status; -1 when unreadable.
int64_t OwnThreads();

// Sets the open-files soft limit to the hard limit; streams share a few connections, but the
// daemon under test may run beside us with the same limits, and gRPC opens a few fds per
// channel. `program` prefixes the message when that fails.
void RaiseOpenFilesLimit(const char* program);

// Opens enough channels to `daemon` for `members` streams at `streams_per_channel` each, one TCP
// connection per channel, and waits up to 30 s for each to connect. `first_channel` numbers them
// apart from other processes'. Empty (after a message prefixed by `program`) when one cannot
// connect.
std::vector<std::unique_ptr<v1::AgentService::Stub>> ConnectStubs(const std::string& daemon,
                                                                  int members,
                                                                  int streams_per_channel,
                                                                  int first_channel,
                                                                  const char* program);

// The identity of simulated member `index`: pod "<pod_prefix><index>" on node "node-<index/8>",
// local index index%8, on 127.0.0.1, with a fresh random incarnation.
v1::MemberIdentity MemberIdentityFor(const std::string& cluster, const std::string& pod_prefix,
                                     int index, absl::BitGen& random);

// One unary call in flight; deleted by its completion callback.
template <typename Request, typename Response>
struct UnaryCall {
  grpc::ClientContext context;
  Request request;
  Response response;
  int64_t start_ns = 0;
};

// The WatchPlan stream of one simulated member; hands every plan to `Run::OnPlan(index, plan)`
// and its end to `Run::OnWatchDone(index, status)`. Lives until the run ends (after OnDone).
template <typename Run>
class PlanWatch final : public grpc::ClientReadReactor<v1::WatchPlanResponse> {
 public:
  PlanWatch(Run* run, int index) : run_(run), index_(index) {}

  void Start(v1::AgentService::Stub* stub, const v1::MemberCredentials& member) {
    *request_.mutable_member() = member;
    stub->async()->WatchPlan(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }

  void Cancel() { context_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream is over; OnDone follows
    run_->OnPlan(index_, response_);
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override { run_->OnWatchDone(index_, status); }

 private:
  Run* const run_;
  const int index_;
  grpc::ClientContext context_;
  v1::WatchPlanRequest request_;
  v1::WatchPlanResponse response_;
};

}  // namespace splitd::load

#endif  // SPLITD_TESTS_LOAD_AGENT_CLIENT_H_
