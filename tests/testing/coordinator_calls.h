#ifndef SPLITD_TESTS_TESTING_COORDINATOR_CALLS_H_
#define SPLITD_TESTS_TESTING_COORDINATOR_CALLS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/coordinator.h"
#include "splitd/v1/agent_service.pb.h"
#include "splitd/v1/topology.pb.h"

namespace splitd::testing {

// A topology of `cluster` with these dims (name, size), in order, and nothing else set.
v1::Topology MeshTopology(const std::string& cluster,
                          const std::vector<std::pair<std::string, int64_t>>& dims);

// The Register request of agent `index` of `cluster` on 127.0.0.1: node "node-<index / per_node>",
// local index index % per_node, pod "<cluster>-<index>", one incarnation per index, Gloo.
v1::RegisterRequest AgentRegistration(const std::string& cluster, int index, int per_node = 4);

// Registers `request` with `coordinator` and returns the new member's credentials.
absl::StatusOr<v1::MemberCredentials> RegisterMember(daemon::Coordinator& coordinator,
                                                     const v1::RegisterRequest& request);

// One heartbeat of `member`.
absl::Status Heartbeat(daemon::Coordinator& coordinator, const v1::MemberCredentials& member);

}  // namespace splitd::testing

#endif  // SPLITD_TESTS_TESTING_COORDINATOR_CALLS_H_
