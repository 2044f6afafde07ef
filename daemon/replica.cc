#include "daemon/replica.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/posix_file.h"
#include "daemon/etcd/leader_election.h"
#include "daemon/follower_server.h"
#include "daemon/store/etcd_state_store.h"
#include "spdlog/spdlog.h"

namespace splitd::daemon {
namespace {

// Replaces this process with a fresh copy of itself: every thread, call and piece of state of
// the deposed leader ends at once, and the copy starts as a follower.
[[noreturn]] void StartAgain(const std::vector<std::string>& argv, const absl::Status& why) {
  spdlog::error("stepping down: {}; starting again as a follower", why.ToString());
  spdlog::default_logger()->flush();
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  execv("/proc/self/exe", args.data());
  spdlog::error("cannot start again: {}", strerror(errno));
  _exit(1);
}

// The advertised address: the flag, else the bound address when its host is a real one.
absl::StatusOr<std::string> Advertise(const ReplicaConfig& replica, const std::string& listen,
                                      int port) {
  if (!replica.advertise.empty()) return replica.advertise;
  const std::string host = listen.substr(0, listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "[::]" || host == "::") {
    return absl::InvalidArgumentError(
        "--advertise HOST:PORT is needed with --etcd_endpoints when --listen is a wildcard "
        "address: clients are sent to the leader by it");
  }
  return absl::StrCat(host, ":", port);
}

// The leader's address as the current election last read it.
class LeaderView {
 public:
  void Set(etcd::LeaderElection* election) {
    absl::MutexLock lock(&mu_);
    election_ = election;
  }
  std::string Address() const {
    absl::MutexLock lock(&mu_);
    return election_ == nullptr ? std::string() : election_->LeaderAddress();
  }

 private:
  mutable absl::Mutex mu_;
  etcd::LeaderElection* election_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// Serves as the leader from the follower's port until `stop`; then resigns. `argv` is the
// command line a step-down starts again.
int Lead(ServerConfig config, const ReplicaConfig& replica, const Clock* clock,
         etcd::EtcdClient* client, etcd::LeaderElection* election,
         const etcd::Leadership& leadership, FollowerServer* follower, const std::string& bound,
         const std::vector<std::string>& argv, absl::Notification* stop) {
  spdlog::info("leading with term {} ({})", leadership.term, leadership.key);
  config.listen = bound;
  config.term = leadership.term;
  config.may_serve = [election]() -> absl::Status {
    if (election->Valid()) return absl::OkStatus();
    return absl::UnavailableError("this splitd replica's leadership ended; ask the replicas again");
  };
  config.open_store = [client, leadership, &replica,
                       argv]() -> absl::StatusOr<std::unique_ptr<store::StateStore>> {
    store::EtcdStoreOptions options;
    options.prefix = replica.prefix;
    options.leader_key = leadership.key;
    options.term = leadership.term;
    options.on_lost = [argv](const absl::Status& why) { StartAgain(argv, why); };
    absl::StatusOr<std::unique_ptr<store::EtcdStateStore>> store =
        store::EtcdStateStore::Open(client, std::move(options));
    if (!store.ok()) return store.status();
    return std::unique_ptr<store::StateStore>(*std::move(store));
  };
  // The port passes from the follower to the leader: calls in the gap fail UNAVAILABLE, which
  // clients retry.
  follower->Shutdown();
  auto server = SplitdServer::Start(config, clock);
  if (!server.ok()) {
    election->Resign();
    spdlog::error("cannot lead: {}", server.status().ToString());
    return 1;
  }
  stop->WaitForNotification();
  (*server)->Shutdown();
  election->Resign();
  return 0;
}

}  // namespace

int RunReplica(ServerConfig config, const ReplicaConfig& replica, const Clock* clock,
               const sigset_t& stop_signals) {
  absl::StatusOr<std::unique_ptr<etcd::EtcdClient>> client = etcd::EtcdClient::Create(replica.etcd);
  if (!client.ok()) {
    spdlog::error("{}", std::string(client.status().message()));
    return 2;
  }
  LeaderView view;
  auto follower =
      FollowerServer::Start(config.listen, config.credentials, [&view] { return view.Address(); });
  if (!follower.ok()) {
    spdlog::error("cannot start: {}", follower.status().ToString());
    return 1;
  }
  const std::string bound =
      absl::StrCat(config.listen.substr(0, config.listen.rfind(':')), ":", (*follower)->port());
  absl::StatusOr<std::string> advertise = Advertise(replica, config.listen, (*follower)->port());
  if (!advertise.ok()) {
    spdlog::error("{}", std::string(advertise.status().message()));
    return 2;
  }
  if (!config.port_file.empty()) {
    if (absl::Status written = WriteFileAtomically(config.port_file, bound + "\n"); !written.ok()) {
      spdlog::error("{}", written.ToString());
      return 1;
    }
  }
  spdlog::info("replica serving as a follower on {} (advertised as {}), etcd {}", bound, *advertise,
               absl::StrJoin(replica.etcd.endpoints, ","));

  absl::Notification stop;
  std::thread signals([&stop, stop_signals] {
    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    spdlog::info("received {}", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
    stop.Notify();
  });
  signals.detach();

  std::atomic<bool> leading{false};
  // Started again on the port it has now (a --listen of port 0 would pick another one).
  std::vector<std::string> again = replica.argv;
  again.push_back("--listen=" + bound);
  auto on_lost = [&leading, again](const absl::Status& why) {
    if (leading.load()) StartAgain(again, why);
  };
  etcd::ElectionOptions election_options;
  election_options.prefix = replica.prefix;
  election_options.advertise = *advertise;
  election_options.ttl = replica.ttl;
  std::unique_ptr<etcd::LeaderElection> election;
  absl::StatusOr<etcd::Leadership> won = absl::CancelledError("not campaigned yet");
  while (true) {
    view.Set(nullptr);
    election = std::make_unique<etcd::LeaderElection>(client->get(), election_options, on_lost);
    view.Set(election.get());
    won = election->Campaign(&stop);
    if (won.ok() || won.status().code() == absl::StatusCode::kCancelled) break;
    spdlog::warn("campaign failed: {}; trying again", won.status().ToString());
    if (stop.WaitForNotificationWithTimeout(absl::Milliseconds(500))) break;
  }
  if (!won.ok()) {
    (*follower)->Shutdown();
    return 0;
  }
  leading = true;
  const int code = Lead(std::move(config), replica, clock, client->get(), election.get(), *won,
                        follower->get(), bound, again, &stop);
  view.Set(nullptr);
  return code;
}

}  // namespace splitd::daemon
