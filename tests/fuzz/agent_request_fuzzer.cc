// Fuzz target: any bytes as an AgentService or ControlService request (the first byte picks the
// call, the rest is the serialized message), handed to a Coordinator that holds a cluster with
// registered members. Requests are what any client can send: nothing may crash, and the
// coordinator must keep answering.

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/strings/str_cat.h"
#include "daemon/coordinator.h"
#include "daemon/store/memory_state_store.h"
#include "splitd/v1/agent_service.pb.h"
#include "splitd/v1/control_service.pb.h"
#include "tests/testing/fake_clock.h"

namespace {

struct World {
  splitd::store::MemoryStateStore store;
  splitd::FakeClock clock;
  splitd::daemon::Coordinator coordinator{&store, &clock};

  World() {
    if (!coordinator.Recover().ok()) abort();
    splitd::v1::Topology topology;
    topology.set_cluster("fuzz");
    for (const char* name : {"tp", "pp"}) {
      splitd::v1::Dim* dim = topology.add_dims();
      dim->set_name(name);
      dim->set_size(2);
    }
    if (!coordinator.ApplyTopology(topology).ok()) abort();
    for (int i = 0; i < 3; ++i) {
      splitd::v1::RegisterRequest request;
      splitd::v1::MemberIdentity* identity = request.mutable_identity();
      identity->set_cluster("fuzz");
      identity->set_pod(absl::StrCat("pod-", i));
      identity->set_node("node-0");
      identity->set_host("127.0.0.1");
      identity->set_local_index(i);
      identity->set_incarnation(absl::StrCat("inc-", i));
      if (!coordinator.Register(request).ok()) abort();
    }
  }
};

template <typename Message>
bool Parse(const uint8_t* data, size_t size, Message* message) {
  return message->ParseFromArray(data, static_cast<int>(size));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = new World();
  if (size == 0) return 0;
  splitd::daemon::Coordinator& coordinator = world->coordinator;
  const uint8_t call = data[0];
  ++data;
  --size;
  switch (call % 8) {
    case 0: {
      splitd::v1::RegisterRequest request;
      if (Parse(data, size, &request)) (void)coordinator.Register(request);
      break;
    }
    case 1: {
      splitd::v1::ReportGroupStatusRequest request;
      if (Parse(data, size, &request)) (void)coordinator.ReportGroupStatus(request);
      break;
    }
    case 2: {
      splitd::v1::HeartbeatRequest request;
      if (Parse(data, size, &request)) (void)coordinator.Heartbeat(request);
      break;
    }
    case 3: {
      splitd::v1::WatchPlanRequest request;
      if (Parse(data, size, &request)) {
        (void)coordinator.NextPlan(request.member(), request.known_epoch());
      }
      break;
    }
    case 4: {
      splitd::v1::KvGetRequest request;
      if (Parse(data, size, &request)) {
        (void)coordinator.AuthorizeRendezvous(request.member(), request.epoch());
      }
      break;
    }
    case 5: {
      splitd::v1::GetPlanRequest request;
      if (Parse(data, size, &request)) {
        splitd::plan::PlanFilter filter;
        filter.group = request.group();
        if (request.has_rank()) filter.rank = request.rank();
        (void)coordinator.GetPlan(request.cluster(), filter);
      }
      break;
    }
    case 6: {
      splitd::v1::ApplyTopologyRequest request;
      // Small worlds only: planning is linear in the world size.
      if (Parse(data, size, &request) && request.topology().cluster() != "fuzz") {
        int64_t world_size = 1;
        for (const splitd::v1::Dim& dim : request.topology().dims()) {
          world_size *= std::max<int64_t>(1, std::min<int64_t>(dim.size(), 1 << 20));
          if (world_size > (1 << 16)) return 0;
        }
        auto applied = coordinator.ApplyTopology(request.topology());
        if (applied.ok()) (void)coordinator.DeleteCluster(request.topology().cluster());
      }
      break;
    }
    default: {
      splitd::v1::GetStatusRequest request;
      if (Parse(data, size, &request)) (void)coordinator.GetStatus(request.cluster());
      break;
    }
  }
  // The cluster is still there and still answers.
  if (!coordinator.GetStatus("fuzz").ok()) abort();
  return 0;
}
