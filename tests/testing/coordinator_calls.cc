#include "tests/testing/coordinator_calls.h"

#include "absl/strings/str_cat.h"

namespace splitd::testing {

v1::Topology MeshTopology(const std::string& cluster,
                          const std::vector<std::pair<std::string, int64_t>>& dims) {
  v1::Topology topology;
  topology.set_cluster(cluster);
  for (const auto& [name, size] : dims) {
    v1::Dim* dim = topology.add_dims();
    dim->set_name(name);
    dim->set_size(size);
  }
  return topology;
}

v1::RegisterRequest AgentRegistration(const std::string& cluster, int index, int per_node) {
  v1::RegisterRequest request;
  v1::MemberIdentity* identity = request.mutable_identity();
  identity->set_cluster(cluster);
  identity->set_pod(absl::StrCat(cluster, "-", index));
  identity->set_node(absl::StrCat("node-", index / per_node));
  identity->set_host("127.0.0.1");
  identity->set_local_index(index % per_node);
  identity->set_incarnation(absl::StrCat(cluster, "-inc-", index));
  request.mutable_capabilities()->add_backends("cpu:gloo");
  return request;
}

absl::StatusOr<v1::MemberCredentials> RegisterMember(daemon::Coordinator& coordinator,
                                                     const v1::RegisterRequest& request) {
  absl::StatusOr<v1::RegisterResponse> registered = coordinator.Register(request);
  if (!registered.ok()) return registered.status();
  v1::MemberCredentials credentials;
  credentials.set_cluster(request.identity().cluster());
  credentials.set_member_id(registered->member_id());
  credentials.set_session_token(registered->session_token());
  return credentials;
}

absl::Status Heartbeat(daemon::Coordinator& coordinator, const v1::MemberCredentials& member) {
  v1::HeartbeatRequest heartbeat;
  *heartbeat.mutable_member() = member;
  return coordinator.Heartbeat(heartbeat).status();
}

}  // namespace splitd::testing
