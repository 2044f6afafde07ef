#include "worker/gloo/gloo_group_builder.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "gloo/allreduce.h"
#include "gloo/context.h"
#include "gloo/math.h"
#include "gloo/rendezvous/context.h"
#include "gloo/rendezvous/prefix_store.h"
#include "gloo/transport/device.h"
#include "gloo/transport/tcp/attr.h"
#include "gloo/transport/tcp/device.h"
#include "spdlog/spdlog.h"
#include "worker/gloo/abandonable_call.h"
#include "worker/gloo/gloo_errors.h"
#include "worker/gloo/rendezvous_store.h"
#include "worker/gloo/split_exchange.h"
#include "worker/world_spec_checks.h"

namespace splitd::worker {
namespace {

constexpr char kBackend[] = "cpu:gloo";
constexpr uint32_t kValidationTag = 0;
constexpr uint32_t kBandwidthTag = 1;

// Gloo multiplies the pair timeout by 5 for connects; keep that far from overflowing.
constexpr absl::Duration kMaxTimeout = absl::Hours(24);

using ReduceFn = void (*)(void*, const void*, const void*, size_t);

absl::Status CheckWorld(const WorldSpec& spec) { return CheckWorldSpec(spec, kMaxTimeout); }

// Resolves `host` to an IPv4 literal ourselves: this Gloo's getaddrinfo error check misses
// most failures and then reads an uninitialized result.
absl::StatusOr<std::string> ResolveIpv4(const std::string& host) {
  if (host.empty()) return absl::InvalidArgumentError("host must not be empty");
  addrinfo hints;
  std::memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  const int rv = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (rv != 0 || result == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "host ", host,
        " does not resolve to an IPv4 address: ", rv != 0 ? gai_strerror(rv) : "no result"));
  }
  char text[INET_ADDRSTRLEN] = {};
  const auto* address = reinterpret_cast<const sockaddr_in*>(result->ai_addr);
  const char* ok = inet_ntop(AF_INET, &address->sin_addr, text, sizeof(text));
  freeaddrinfo(result);
  if (ok == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("host ", host, ": inet_ntop failed"));
  }
  return std::string(text);
}

// One all-reduce (sum) of `values` in `context`; returns its wall time.
absl::StatusOr<absl::Duration> TimedAllreduce(const std::shared_ptr<::gloo::Context>& context,
                                              std::vector<float>& values, uint32_t tag,
                                              std::chrono::milliseconds timeout) {
  absl::Duration elapsed;
  RETURN_IF_ERROR(CallGloo("allreduce", [&]() {
    ::gloo::AllreduceOptions options(context);
    options.setOutput(values.data(), values.size());
    options.setReduceFunction(static_cast<ReduceFn>(&::gloo::sum<float>));
    options.setTag(tag);
    options.setTimeout(timeout);
    const absl::Time start = absl::Now();
    ::gloo::allreduce(options);
    elapsed = absl::Now() - start;
  }));
  return elapsed;
}

// Gloo's connectFullMesh reads "<prefix>/rank_<i>" and then "<prefix>/<i>" of every other rank,
// one after another; every rank sets its own pair of keys before it reads any. Batched, each
// kind of key arrives in one round trip.
void BatchFullMeshKeys(const std::string& prefix, int rank, int size, RendezvousStore* store) {
  std::vector<std::string> hosts;
  std::vector<std::string> addresses;
  for (int i = 0; i < size; ++i) {
    if (i == rank) continue;
    hosts.push_back(absl::StrCat(prefix, "/rank_", i));
    addresses.push_back(absl::StrCat(prefix, "/", i));
  }
  if (hosts.empty()) return;
  store->FetchTogether(hosts);
  store->FetchTogether(addresses);
}

class GlooGroupBuilder : public GroupBuilder {
 public:
  ~GlooGroupBuilder() override { Release(); }

  std::string backend() const override { return kBackend; }

  absl::Status BootstrapWorld(const WorldSpec& spec, RendezvousClient* rendezvous) override {
    if (world_ != nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "world of epoch ", epoch_, " is still connected; Release before bootstrapping again"));
    }
    if (rendezvous == nullptr) return absl::InvalidArgumentError("rendezvous is null");
    RETURN_IF_ERROR(CheckWorld(spec));
    ASSIGN_OR_RETURN(const std::string address, ResolveIpv4(spec.host));
    const std::chrono::milliseconds timeout = absl::ToChronoMilliseconds(spec.timeout);
    const absl::Time start = absl::Now();

    // Shared with the bootstrap's thread, which a newer plan may leave to end in the background.
    struct Bootstrap {
      std::shared_ptr<::gloo::transport::Device> device;
      std::shared_ptr<::gloo::rendezvous::Context> world;  // released before its device
    };
    auto made = std::make_shared<Bootstrap>();
    const absl::Status status = RunAbandonable(
        absl::StrCat("rank ", spec.rank, " world bootstrap of epoch ", spec.epoch), rendezvous,
        [made, address, spec, timeout](RendezvousClient* client) {
          absl::Status connected = CallGloo("world bootstrap", [&]() {
            ::gloo::transport::tcp::attr attr;
            attr.hostname = address;
            attr.ai_family = AF_INET;
            made->device = ::gloo::transport::tcp::CreateDevice(attr);
            made->world = std::make_shared<::gloo::rendezvous::Context>(spec.rank, spec.world_size);
            // Before connectFullMesh, which copies it into the pairs; its store waits get the
            // whole bound all the same.
            made->world->setTimeout(PairTimeout(timeout));
            RendezvousStore store(client, spec.timeout, /*min_wait=*/spec.timeout);
            BatchFullMeshKeys("world", spec.rank, spec.world_size, &store);
            ::gloo::rendezvous::PrefixStore prefixed("world", store);
            made->world->connectFullMesh(prefixed, made->device);
          });
          if (!connected.ok()) {
            made->world.reset();  // contexts before their device, as in Release
            made->device.reset();
          }
          return connected;
        });
    if (!status.ok()) {
      spdlog::debug("gloo: rank {} world bootstrap of epoch {} failed: {}", spec.rank, spec.epoch,
                    status.ToString());
      return status;
    }
    device_ = std::move(made->device);
    world_ = std::move(made->world);
    epoch_ = spec.epoch;
    rank_ = spec.rank;
    world_size_ = spec.world_size;
    spdlog::debug("gloo: rank {}/{} connected the world of epoch {} on {} in {}", spec.rank,
                  spec.world_size, spec.epoch, device_->str(),
                  absl::FormatDuration(absl::Now() - start));
    return absl::OkStatus();
  }

  absl::Status FormGroups(const WorldSpec& spec, RendezvousClient* rendezvous) override {
    if (world_ == nullptr) {
      return absl::FailedPreconditionError("FormGroups before BootstrapWorld");
    }
    if (!groups_.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("groups of epoch ", epoch_, " are already formed"));
    }
    RETURN_IF_ERROR(CheckWorld(spec));
    if (spec.epoch != epoch_ || spec.rank != rank_ || spec.world_size != world_size_) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec (epoch ", spec.epoch, ", rank ", spec.rank, "/", spec.world_size,
                       ") does not match the bootstrapped world (epoch ", epoch_, ", rank ", rank_,
                       "/", world_size_, ")"));
    }
    RETURN_IF_ERROR(CheckGroupAssignments(spec));
    if (spec.method != "split" && spec.method != "init") {
      return absl::InvalidArgumentError(
          absl::StrCat("method must be \"split\" or \"init\", got \"", spec.method, "\""));
    }
    if (spec.method == "init" && rendezvous == nullptr) {
      return absl::InvalidArgumentError("method init needs a rendezvous client");
    }

    const std::vector<size_t> order = KindOrder(spec.groups);
    std::vector<GroupAssignment> ordered;
    ordered.reserve(order.size());
    for (size_t i : order) ordered.push_back(spec.groups[i]);
    const std::chrono::milliseconds timeout = absl::ToChronoMilliseconds(spec.timeout);
    const absl::Time start = absl::Now();

    std::vector<std::shared_ptr<::gloo::Context>> contexts;
    if (spec.method == "split") {
      absl::StatusOr<std::vector<std::shared_ptr<::gloo::Context>>> split =
          SplitGroups(world_, ordered, spec.epoch, timeout);
      if (!split.ok()) {
        spdlog::debug("gloo: rank {} split failed: {}", rank_, split.status().ToString());
        return split.status();
      }
      contexts = *std::move(split);
    } else {
      RendezvousStore store(rendezvous, spec.timeout, /*min_wait=*/spec.timeout);
      for (const GroupAssignment& group : ordered) {
        std::shared_ptr<::gloo::rendezvous::Context> context;
        absl::Status status = CallGloo(absl::StrCat("init of group ", GroupName(group)), [&]() {
          const std::string prefix = absl::StrCat("init/", group.kind, "/", group.group_index);
          BatchFullMeshKeys(prefix, group.local_rank, static_cast<int>(group.members.size()),
                            &store);
          ::gloo::rendezvous::PrefixStore prefixed(prefix, store);
          context = std::make_shared<::gloo::rendezvous::Context>(
              group.local_rank, static_cast<int>(group.members.size()));
          context->setTimeout(PairTimeout(timeout));
          context->connectFullMesh(prefixed, device_);
        });
        if (!status.ok()) {
          spdlog::debug("gloo: rank {} init failed: {}", rank_, status.ToString());
          context.reset();
          contexts.clear();  // groups formed so far, before returning the error
          return status;
        }
        contexts.push_back(std::move(context));
      }
    }

    for (size_t i = 0; i < ordered.size(); ++i) {
      groups_.push_back(FormedGroup{ordered[i], std::move(contexts[i])});
    }
    spdlog::debug("gloo: rank {} formed {} group(s) of epoch {} by {} in {}", rank_, groups_.size(),
                  spec.epoch, spec.method, absl::FormatDuration(absl::Now() - start));
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<GroupValidation>> Validate(const WorldSpec& spec) override {
    if (world_ == nullptr) return absl::FailedPreconditionError("Validate before BootstrapWorld");
    if (spec.timeout <= absl::ZeroDuration() || spec.timeout > kMaxTimeout) {
      return absl::InvalidArgumentError(absl::StrCat("timeout must be in (0, ",
                                                     absl::FormatDuration(kMaxTimeout), "], got ",
                                                     absl::FormatDuration(spec.timeout)));
    }
    if (spec.allreduce_elements < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("allreduce_elements must be >= 1, got ", spec.allreduce_elements));
    }
    if (spec.bandwidth_bytes < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("bandwidth_bytes must be >= 0, got ", spec.bandwidth_bytes));
    }
    // Each requested group must have been formed; find it by (kind, group index).
    std::vector<const FormedGroup*> formed(spec.groups.size(), nullptr);
    for (size_t i = 0; i < spec.groups.size(); ++i) {
      for (const FormedGroup& group : groups_) {
        if (group.assignment.kind == spec.groups[i].kind &&
            group.assignment.group_index == spec.groups[i].group_index) {
          formed[i] = &group;
        }
      }
      if (formed[i] == nullptr) {
        return absl::FailedPreconditionError(absl::StrCat(
            "Validate: group ", GroupName(spec.groups[i]), " was not formed (call FormGroups)"));
      }
    }

    const std::chrono::milliseconds timeout = absl::ToChronoMilliseconds(spec.timeout);
    std::vector<GroupValidation> results(spec.groups.size());
    // The groups are independent contexts: their validation all-reduces run side by side, one
    // thread each, so a rank does not wait for one group's slowest member before it starts the
    // next. Bandwidth runs follow one at a time, in kind order, so they do not share the wire.
    if (spec.groups.size() == 1) {
      results[0] = ValidateGroup(*formed[0], spec, timeout);
    } else {
      std::vector<std::thread> threads;
      threads.reserve(spec.groups.size());
      for (size_t i = 0; i < spec.groups.size(); ++i) {
        threads.emplace_back([&, i] { results[i] = ValidateGroup(*formed[i], spec, timeout); });
      }
      for (std::thread& thread : threads) thread.join();
    }
    if (spec.bandwidth_bytes > 0) {
      for (size_t i : KindOrder(spec.groups)) {
        if (results[i].ok) MeasureBandwidth(*formed[i], spec, timeout, &results[i]);
      }
    }
    return results;
  }

  void Release() override {
    // Sub contexts first (they share the world's device), then the world, then the device.
    const bool had_state = world_ != nullptr || !groups_.empty() || device_ != nullptr;
    while (!groups_.empty()) groups_.pop_back();
    world_.reset();
    device_.reset();
    if (had_state) spdlog::debug("gloo: rank {} released epoch {}", rank_, epoch_);
  }

 private:
  struct FormedGroup {
    GroupAssignment assignment;
    std::shared_ptr<::gloo::Context> context;
  };

  GroupValidation ValidateGroup(const FormedGroup& group, const WorldSpec& spec,
                                std::chrono::milliseconds timeout) {
    GroupValidation result;
    result.kind = group.assignment.kind;
    result.group_index = group.assignment.group_index;
    const int size = static_cast<int>(group.assignment.members.size());
    if (size == 1) {
      result.ok = true;
      result.allreduce_value = 1;
      return result;
    }

    std::vector<float> values(static_cast<size_t>(spec.allreduce_elements), 1.0f);
    absl::StatusOr<absl::Duration> elapsed =
        TimedAllreduce(group.context, values, kValidationTag, timeout);
    if (!elapsed.ok()) {
      result.error = elapsed.status().ToString();
      spdlog::debug("gloo: rank {} validation of {} failed: {}", rank_, GroupName(group.assignment),
                    result.error);
      return result;
    }
    result.latency_us = absl::ToDoubleMicroseconds(*elapsed);
    const float expected = static_cast<float>(size);
    float minimum = values.front();
    size_t wrong = 0;
    for (float value : values) {
      minimum = std::min(minimum, value);
      if (value != expected) ++wrong;
    }
    result.allreduce_value = minimum;
    if (wrong > 0) {
      result.error = absl::StrCat(wrong, " of ", values.size(),
                                  " all-reduce elements differ from the group size ", size,
                                  " (min ", minimum, ")");
      return result;
    }

    result.ok = true;
    return result;
  }

  // A timed all-reduce of `spec.bandwidth_bytes` gives the group's bus bandwidth.
  void MeasureBandwidth(const FormedGroup& group, const WorldSpec& spec,
                        std::chrono::milliseconds timeout, GroupValidation* result) {
    const int size = static_cast<int>(group.assignment.members.size());
    if (size == 1) return;
    const size_t floats =
        std::max<size_t>(1, static_cast<size_t>(spec.bandwidth_bytes) / sizeof(float));
    std::vector<float> payload(floats, 1.0f);
    absl::StatusOr<absl::Duration> timed =
        TimedAllreduce(group.context, payload, kBandwidthTag, timeout);
    if (!timed.ok()) {
      result->ok = false;
      result->error = absl::StrCat("bandwidth run: ", timed.status().ToString());
      return;
    }
    const double seconds = std::max(absl::ToDoubleSeconds(*timed), 1e-9);
    const double bytes = static_cast<double>(floats * sizeof(float));
    result->bus_bandwidth_gbps = 2.0 * (size - 1) / size * bytes / seconds / 1e9;
  }

  std::shared_ptr<::gloo::transport::Device> device_;
  std::shared_ptr<::gloo::Context> world_;
  std::vector<FormedGroup> groups_;  // in kind_index order
  int64_t epoch_ = 0;
  int rank_ = 0;
  int world_size_ = 0;
};

}  // namespace

std::unique_ptr<GroupBuilder> MakeGlooGroupBuilder() {
  return std::make_unique<GlooGroupBuilder>();
}

}  // namespace splitd::worker
