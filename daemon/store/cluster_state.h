#ifndef SPLITD_DAEMON_STORE_CLUSTER_STATE_H_
#define SPLITD_DAEMON_STORE_CLUSTER_STATE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "daemon/store/cluster_record.h"
#include "splitd/v1/agent_service.pb.h"

namespace splitd::store {

// One agent as Register admitted it.
struct StoredMember {
  v1::MemberIdentity identity;
  v1::Capabilities capabilities;
  std::string session_token_sha256;  // lowercase hex SHA-256 of its session token
  absl::Time registered;
};

// Everything durable about one cluster: its topology and epoch, its members in registration
// order, and the reports and rendezvous keys of its current epoch, in the order they came.
struct ClusterState {
  ClusterRecord record;
  std::vector<StoredMember> members;
  std::vector<v1::ReportGroupStatusRequest> reports;
  std::map<std::string, std::string> rendezvous;
};

}  // namespace splitd::store

#endif  // SPLITD_DAEMON_STORE_CLUSTER_STATE_H_
