#include "tests/load/agent_client.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace splitd::load {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::chrono::system_clock::time_point DeadlineIn(absl::Duration timeout) {
  return std::chrono::system_clock::now() +
         std::chrono::microseconds(absl::ToInt64Microseconds(timeout));
}

int64_t OwnThreads() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoll(line.substr(8));
  }
  return -1;
}

void RaiseOpenFilesLimit(const char* program) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      std::perror(absl::StrCat(program, ": setrlimit").c_str());
    }
  }
}

std::vector<std::unique_ptr<v1::AgentService::Stub>> ConnectStubs(const std::string& daemon,
                                                                  int members,
                                                                  int streams_per_channel,
                                                                  int first_channel,
                                                                  const char* program) {
  const int count = std::max(1, (members + streams_per_channel - 1) / streams_per_channel);
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(30);
  std::vector<std::unique_ptr<v1::AgentService::Stub>> stubs;
  for (int c = 0; c < count; ++c) {
    grpc::ChannelArguments args;
    // A distinct argument and a local subchannel pool: one TCP connection per channel.
    args.SetInt("splitd.load.channel", first_channel + c);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto channel = grpc::CreateCustomChannel(daemon, grpc::InsecureChannelCredentials(), args);
    if (!channel->WaitForConnected(deadline)) {
      std::fprintf(stderr, "%s: cannot connect to %s\n", program, daemon.c_str());
      return {};
    }
    // The stub holds its channel.
    stubs.push_back(v1::AgentService::NewStub(channel));
  }
  return stubs;
}

v1::MemberIdentity MemberIdentityFor(const std::string& cluster, const std::string& pod_prefix,
                                     int index, absl::BitGen& random) {
  v1::MemberIdentity identity;
  identity.set_cluster(cluster);
  identity.set_pod(absl::StrCat(pod_prefix, index));
  identity.set_node(absl::StrCat("node-", index / 8));
  identity.set_host("127.0.0.1");
  identity.set_local_index(index % 8);
  identity.set_incarnation(absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(random),
                                           absl::Uniform<uint64_t>(random)));
  return identity;
}

}  // namespace splitd::load
