#include "tests/testing/etcd_cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "tests/testing/temp_files.h"

namespace splitd::testing {
namespace {

// Asks the member at `endpoint` for a linearizable read; its header names the member.
absl::StatusOr<etcdserverpb::ResponseHeader> Probe(const std::string& endpoint) {
  auto channel = grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
  auto kv = etcdserverpb::KV::NewStub(channel);
  grpc::ClientContext context;
  context.AddMetadata("hasleader", "true");
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  etcdserverpb::RangeRequest request;
  request.set_key("probe");
  etcdserverpb::RangeResponse response;
  grpc::Status status = kv->Range(&context, request, &response);
  if (!status.ok()) return absl::UnavailableError(status.error_message());
  return response.header();
}

}  // namespace

int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::Start(int members) {
  std::unique_ptr<EtcdCluster> cluster(new EtcdCluster());
  const std::string root = MakeTempDir("etcd");
  cluster->token_ = absl::StrCat("splitd-test-", getpid(), "-", FreeLoopbackPort());
  std::vector<std::string> peers;
  for (int i = 0; i < members; ++i) {
    Member member;
    member.name = absl::StrCat("m", i);
    member.client_port = FreeLoopbackPort();
    member.peer_port = FreeLoopbackPort();
    member.data_dir = absl::StrCat(root, "/", member.name);
    peers.push_back(absl::StrCat(member.name, "=http://127.0.0.1:", member.peer_port));
    cluster->members_.push_back(std::move(member));
  }
  cluster->initial_cluster_ = absl::StrJoin(peers, ",");
  for (int i = 0; i < members; ++i) {
    if (absl::Status started = cluster->StartMember(i, true); !started.ok()) return started;
  }
  if (absl::Status ready = cluster->WaitReady(absl::Seconds(30)); !ready.ok()) return ready;
  return cluster;
}

EtcdCluster::~EtcdCluster() {
  for (int i = 0; i < size(); ++i) Kill(i);
}

absl::Status EtcdCluster::StartMember(int i, bool fresh) {
  Member& member = members_[i];
  const std::string client = absl::StrCat("http://127.0.0.1:", member.client_port);
  const std::string peer = absl::StrCat("http://127.0.0.1:", member.peer_port);
  std::vector<std::string> argv = {"/usr/bin/etcd",
                                   "--name",
                                   member.name,
                                   "--data-dir",
                                   member.data_dir,
                                   "--listen-client-urls",
                                   client,
                                   "--advertise-client-urls",
                                   client,
                                   "--listen-peer-urls",
                                   peer,
                                   "--initial-advertise-peer-urls",
                                   peer,
                                   "--initial-cluster-token",
                                   token_,
                                   "--initial-cluster",
                                   initial_cluster_,
                                   "--initial-cluster-state",
                                   fresh ? "new" : "existing",
                                   "--unsafe-no-fsync",
                                   "--log-level",
                                   "warn",
                                   "--heartbeat-interval",
                                   "100",
                                   "--election-timeout",
                                   "1000"};
  absl::StatusOr<Subprocess> process = Subprocess::Start(argv);
  if (!process.ok()) return process.status();
  member.process.emplace(*std::move(process));
  return absl::OkStatus();
}

std::string EtcdCluster::endpoint(int i) const {
  return absl::StrCat("127.0.0.1:", members_[i].client_port);
}

std::vector<std::string> EtcdCluster::endpoints() const {
  std::vector<std::string> all;
  for (int i = 0; i < size(); ++i) all.push_back(endpoint(i));
  return all;
}

std::string EtcdCluster::endpoints_flag() const { return absl::StrJoin(endpoints(), ","); }

void EtcdCluster::Kill(int i) {
  if (!members_[i].process.has_value()) return;
  members_[i].process->Signal(SIGKILL);
  (void)members_[i].process->Wait(absl::Seconds(10));
  members_[i].process.reset();
}

absl::Status EtcdCluster::Restart(int i) {
  Kill(i);
  return StartMember(i, false);
}

void EtcdCluster::Signal(int i, int signal_number) {
  if (members_[i].process.has_value()) members_[i].process->Signal(signal_number);
}

absl::StatusOr<int> EtcdCluster::Leader() const {
  for (int i = 0; i < size(); ++i) {
    if (!members_[i].process.has_value()) continue;
    auto channel = grpc::CreateChannel(endpoint(i), grpc::InsecureChannelCredentials());
    auto maintenance = etcdserverpb::Maintenance::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    etcdserverpb::StatusResponse status;
    if (!maintenance->Status(&context, etcdserverpb::StatusRequest(), &status).ok()) continue;
    if (status.leader() != 0 && status.leader() == status.header().member_id()) return i;
  }
  return absl::NotFoundError("no running etcd member leads");
}

absl::Status EtcdCluster::WaitReady(absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status last = absl::UnavailableError("no member running");
  while (absl::Now() < deadline) {
    for (int i = 0; i < size(); ++i) {
      if (!members_[i].process.has_value()) continue;
      absl::StatusOr<etcdserverpb::ResponseHeader> header = Probe(endpoint(i));
      if (header.ok()) return absl::OkStatus();
      last = header.status();
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat("etcd not ready: ", last.message()));
}

}  // namespace splitd::testing
