#include "worker/gloo/split_exchange.h"

#include <cstring>
#include <exception>
#include <map>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gloo/transport/address.h"
#include "gloo/transport/context.h"
#include "gloo/transport/device.h"
#include "gloo/transport/pair.h"
#include "gloo/transport/unbound_buffer.h"
#include "spdlog/spdlog.h"
#include "worker/gloo/gloo_errors.h"
#include "worker/gloo/subgroup_context.h"

namespace splitd::worker {
namespace {

constexpr size_t kAddressFieldSize = ::gloo::transport::Address::kMaxByteSize;
constexpr size_t kLengthFieldSize = sizeof(uint32_t);

// The exchange slot: a prefix no Gloo collective uses (they build slots from prefixes 0x01..0x08
// in the top byte, and nextSlot() hands out small integers), and the epoch, equal on all ranks.
uint64_t SplitSlot(int64_t epoch) {
  return (uint64_t{0xA0} << 56) | (static_cast<uint64_t>(epoch) & ((uint64_t{1} << 56) - 1));
}

void WriteRecord(const std::vector<char>& address, char* out) {
  const uint32_t length = static_cast<uint32_t>(address.size());
  std::memcpy(out, &length, kLengthFieldSize);
  std::memset(out + kLengthFieldSize, 0, kAddressFieldSize);
  std::memcpy(out + kLengthFieldSize, address.data(), address.size());
}

absl::StatusOr<std::vector<char>> ReadRecord(const char* in, int world_peer) {
  uint32_t length = 0;
  std::memcpy(&length, in, kLengthFieldSize);
  if (length == 0 || length > kAddressFieldSize) {
    return absl::InternalError(absl::StrCat("split: malformed address record from world rank ",
                                            world_peer, ": length ", length));
  }
  return std::vector<char>(in + kLengthFieldSize, in + kLengthFieldSize + length);
}

using TransportContexts = std::vector<std::shared_ptr<::gloo::transport::Context>>;
// Peer addresses per (group, peer local rank).
using GroupAddresses = std::vector<std::vector<std::vector<char>>>;

// Step 1 of a split: a transport context and pairs per group.
TransportContexts CreateGroupTransports(::gloo::transport::Device& device,
                                        const std::vector<GroupAssignment>& groups,
                                        std::chrono::milliseconds timeout) {
  TransportContexts transport(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    const GroupAssignment& group = groups[g];
    const int size = static_cast<int>(group.members.size());
    transport[g] = device.createContext(group.local_rank, size);
    transport[g]->setTimeout(PairTimeout(timeout));  // copied into each pair by createPair
    for (int j = 0; j < size; ++j) {
      if (j != group.local_rank) transport[g]->createPair(j);
    }
  }
  return transport;
}

// Where the message of each of `peers` starts in the exchanged bytes; `*total` is their size.
std::vector<size_t> MessageOffsets(const std::vector<SplitPeer>& peers, size_t* total) {
  const size_t record = SplitRecordSize();
  std::vector<size_t> offsets(peers.size());
  *total = 0;
  for (size_t i = 0; i < peers.size(); ++i) {
    offsets[i] = *total;
    *total += peers[i].links.size() * record;
  }
  return offsets;
}

// Step 2: one message per world peer, the records of every group shared with it, sent over
// `world`; what the peers send lands in `recv_bytes`.
absl::Status ExchangeAddresses(const std::shared_ptr<::gloo::Context>& world,
                               const std::vector<SplitPeer>& peers,
                               const std::vector<size_t>& offsets,
                               const TransportContexts& transport, int64_t epoch,
                               std::chrono::milliseconds timeout, std::vector<char>* recv_bytes) {
  const size_t record = SplitRecordSize();
  // The buffers outlive the unbound buffers that point into them (declared first).
  std::vector<char> send_bytes(recv_bytes->size());
  for (size_t i = 0; i < peers.size(); ++i) {
    for (size_t l = 0; l < peers[i].links.size(); ++l) {
      const SplitLink& link = peers[i].links[l];
      const std::vector<char> address =
          transport[link.group]->getPair(link.peer_local_rank)->address().bytes();
      if (address.empty() || address.size() > kAddressFieldSize) {
        return absl::InternalError(
            absl::StrCat("split: transport address of ", address.size(), " bytes"));
      }
      WriteRecord(address, send_bytes.data() + offsets[i] + l * record);
    }
  }

  if (!peers.empty()) {
    const uint64_t slot = SplitSlot(epoch);
    std::unique_ptr<::gloo::transport::UnboundBuffer> send_buffer =
        world->createUnboundBuffer(send_bytes.data(), send_bytes.size());
    std::unique_ptr<::gloo::transport::UnboundBuffer> recv_buffer =
        world->createUnboundBuffer(recv_bytes->data(), recv_bytes->size());
    for (size_t i = 0; i < peers.size(); ++i) {
      const size_t bytes = peers[i].links.size() * record;
      recv_buffer->recv(peers[i].world_rank, slot, offsets[i], bytes);
      send_buffer->send(peers[i].world_rank, slot, offsets[i], bytes);
    }
    for (size_t i = 0; i < peers.size(); ++i) {
      if (!recv_buffer->waitRecv(nullptr, timeout)) {
        return absl::AbortedError("split: address exchange aborted while receiving");
      }
    }
    for (size_t i = 0; i < peers.size(); ++i) {
      if (!send_buffer->waitSend(nullptr, timeout)) {
        return absl::AbortedError("split: address exchange aborted while sending");
      }
    }
  }
  return absl::OkStatus();
}

// Step 3: the peer addresses per (group, peer local rank), read from `recv_bytes`.
absl::StatusOr<GroupAddresses> ReadAddresses(const std::vector<GroupAssignment>& groups,
                                             const std::vector<SplitPeer>& peers,
                                             const std::vector<size_t>& offsets,
                                             const std::vector<char>& recv_bytes) {
  const size_t record = SplitRecordSize();
  GroupAddresses remote(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) remote[g].resize(groups[g].members.size());
  for (size_t i = 0; i < peers.size(); ++i) {
    for (size_t l = 0; l < peers[i].links.size(); ++l) {
      const SplitLink& link = peers[i].links[l];
      absl::StatusOr<std::vector<char>> address =
          ReadRecord(recv_bytes.data() + offsets[i] + l * record, peers[i].world_rank);
      if (!address.ok()) return address.status();
      remote[link.group][link.peer_local_rank] = *std::move(address);
    }
  }
  return remote;
}

// Step 4: connect. Within a group every member connects its pairs in ascending peer local rank
// (a Pair's connect blocks until the peer reaches the same pair, so one order everywhere is
// what keeps it from deadlocking). Groups share no pair, so each group connects on its own
// thread and the groups form side by side instead of one after another. Gloo's exceptions are
// rethrown on the calling thread.
void ConnectGroups(const std::vector<GroupAssignment>& groups, const TransportContexts& transport,
                   const GroupAddresses& remote) {
  auto connect_group = [&](size_t g) {
    const GroupAssignment& group = groups[g];
    for (size_t j = 0; j < group.members.size(); ++j) {
      if (static_cast<int>(j) == group.local_rank) continue;
      transport[g]->getPair(static_cast<int>(j))->connect(remote[g][j]);
    }
  };
  std::vector<size_t> to_connect;
  for (size_t g = 0; g < groups.size(); ++g) {
    if (groups[g].members.size() > 1) to_connect.push_back(g);
  }
  if (to_connect.size() == 1) {
    connect_group(to_connect[0]);
  } else if (!to_connect.empty()) {
    std::vector<std::exception_ptr> errors(to_connect.size());
    std::vector<std::thread> threads;
    threads.reserve(to_connect.size());
    for (size_t t = 0; t < to_connect.size(); ++t) {
      threads.emplace_back([&, t] {
        try {
          connect_group(to_connect[t]);
        } catch (...) {
          errors[t] = std::current_exception();
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    for (const std::exception_ptr& error : errors) {
      if (error) std::rethrow_exception(error);
    }
  }
}

// The body of SplitGroups; Gloo calls in it may throw.
absl::StatusOr<std::vector<std::shared_ptr<::gloo::Context>>> SplitGroupsOrThrow(
    const std::shared_ptr<::gloo::Context>& world, const std::vector<GroupAssignment>& groups,
    int64_t epoch, std::chrono::milliseconds timeout) {
  const absl::Time start = absl::Now();
  std::shared_ptr<::gloo::transport::Device>& device = world->getDevice();
  if (device == nullptr) {
    return absl::FailedPreconditionError("split: the world context has no device");
  }
  const TransportContexts transport = CreateGroupTransports(*device, groups, timeout);
  const std::vector<SplitPeer> peers = PlanSplitPeers(world->rank, groups);
  size_t total = 0;
  const std::vector<size_t> offsets = MessageOffsets(peers, &total);
  std::vector<char> recv_bytes(total);
  const absl::Status exchange =
      ExchangeAddresses(world, peers, offsets, transport, epoch, timeout, &recv_bytes);
  if (!exchange.ok()) return exchange;
  const absl::Time exchanged = absl::Now();
  absl::StatusOr<GroupAddresses> remote = ReadAddresses(groups, peers, offsets, recv_bytes);
  if (!remote.ok()) return remote.status();
  ConnectGroups(groups, transport, *remote);

  std::vector<std::shared_ptr<::gloo::Context>> contexts;
  contexts.reserve(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    contexts.push_back(std::make_shared<SubgroupContext>(groups[g].local_rank,
                                                         static_cast<int>(groups[g].members.size()),
                                                         timeout, device, transport[g]));
  }
  spdlog::debug(
      "split: rank {} formed {} group(s) with {} peer message(s) in {} "
      "(exchange {}, connect {})",
      world->rank, groups.size(), peers.size(), absl::FormatDuration(absl::Now() - start),
      absl::FormatDuration(exchanged - start), absl::FormatDuration(absl::Now() - exchanged));
  return contexts;
}

}  // namespace

size_t SplitRecordSize() { return kLengthFieldSize + kAddressFieldSize; }

std::vector<SplitPeer> PlanSplitPeers(int my_rank, const std::vector<GroupAssignment>& groups) {
  std::map<int, std::vector<SplitLink>> by_peer;
  for (size_t g = 0; g < groups.size(); ++g) {
    const std::vector<int32_t>& members = groups[g].members;
    for (size_t j = 0; j < members.size(); ++j) {
      if (members[j] == my_rank) continue;
      by_peer[members[j]].push_back(SplitLink{g, static_cast<int>(j)});
    }
  }
  std::vector<SplitPeer> peers;
  peers.reserve(by_peer.size());
  for (auto& [world_rank, links] : by_peer) {
    peers.push_back(SplitPeer{world_rank, std::move(links)});
  }
  return peers;
}

absl::StatusOr<std::vector<std::shared_ptr<::gloo::Context>>> SplitGroups(
    const std::shared_ptr<::gloo::Context>& world, const std::vector<GroupAssignment>& groups,
    int64_t epoch, std::chrono::milliseconds timeout) {
  if (world == nullptr) return absl::FailedPreconditionError("split: no world context");
  absl::StatusOr<std::vector<std::shared_ptr<::gloo::Context>>> result;
  absl::Status status = CallGloo("split", [&]() -> absl::Status {
    result = SplitGroupsOrThrow(world, groups, epoch, timeout);
    return result.status();
  });
  if (!status.ok()) return status;
  return result;
}

}  // namespace splitd::worker
