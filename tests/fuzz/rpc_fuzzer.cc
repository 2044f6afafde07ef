// Fuzz target: any bytes as a ControlService or AgentService request, sent over gRPC to an
// in-process daemon (SplitdServer: the real ControlService and AgentService adapters, the
// Coordinator and the rendezvous spaces; state in memory) that holds a cluster with four
// registered members. The daemon requires tokens (an admin and an observer token; the cluster has
// a join token). The first byte picks the method; the second whether the request speaks as one
// of those members (their credentials replace the fuzzed ones, so the call gets past
// authentication) and which bearer token the call carries (the right one for its service, none,
// the observer token, or a member's session token); the rest is the serialized request. Nothing
// may crash, every call must end, and every refusal must carry a status code the API documents,
// with a message.

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/splitd_server.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "spdlog/spdlog.h"
#include "splitd/v1/agent_service.grpc.pb.h"
#include "splitd/v1/control_service.grpc.pb.h"
#include "tests/testing/fake_clock.h"

namespace {

namespace v1 = ::splitd::v1;

constexpr char kCluster[] = "fuzz";
constexpr char kAdminToken[] = "fuzz-admin-token-0123456789";
constexpr char kObserverToken[] = "fuzz-observer-token-0123456789";
constexpr char kJoinToken[] = "fuzz-join-token-0123456789";

// The "authorization" value the next calls carry; empty: none.
std::string authorization;

void AddAuthorization(grpc::ClientContext* context) {
  if (!authorization.empty()) context->AddMetadata("authorization", authorization);
}
constexpr int kMembers = 4;
// Planning and plan replies grow with the world: small worlds keep inputs fast.
constexpr int64_t kMaxWorld = 4096;
// Calls that answer at once; a call that runs into this deadline hung.
constexpr auto kCallDeadline = std::chrono::seconds(10);
// Calls that may wait (KvGet, the streams): cut short, and DEADLINE_EXCEEDED is their answer.
constexpr auto kWaitDeadline = std::chrono::milliseconds(5);

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "rpc_fuzzer: %s\n", what.c_str());
  std::fflush(stderr);
  abort();
}

// A refusal is one of the codes the adapters and the Coordinator use, with a message;
// calls that wait may also be cut short by their deadline or by the client's cancel.
void CheckStatus(const char* method, const grpc::Status& status, bool waits) {
  if (status.ok()) return;
  bool known = false;
  switch (status.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::UNAVAILABLE:
      known = !status.error_message().empty();
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
      known = waits;
      break;
    default:
      break;
  }
  if (!known) {
    Fail(absl::StrCat(method, " ended with status ", status.error_code(), " \"",
                      status.error_message(), "\""));
  }
}

std::chrono::system_clock::time_point In(std::chrono::milliseconds timeout) {
  return std::chrono::system_clock::now() + timeout;
}

template <typename Stub, typename Request, typename Response>
grpc::Status CallUnary(
    Stub* stub, grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
    const Request& request, Response* response, std::chrono::milliseconds timeout = kCallDeadline) {
  grpc::ClientContext context;
  context.set_deadline(In(timeout));
  AddAuthorization(&context);
  return (stub->*method)(&context, request, response);
}

// A unary call that answers at once.
template <typename Stub, typename Request, typename Response>
void Unary(const char* name, Stub* stub,
           grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
           const Request& request) {
  Response response;
  CheckStatus(name, CallUnary(stub, method, request, &response), /*waits=*/false);
}

// A server stream: its first message or its end, then the client cancels.
template <typename Stub, typename Request, typename Response>
void Stream(const char* name, Stub* stub,
            std::unique_ptr<grpc::ClientReader<Response>> (Stub::*method)(grpc::ClientContext*,
                                                                          const Request&),
            const Request& request) {
  grpc::ClientContext context;
  context.set_deadline(In(kWaitDeadline));
  AddAuthorization(&context);
  std::unique_ptr<grpc::ClientReader<Response>> reader = (stub->*method)(&context, request);
  Response response;
  if (reader->Read(&response)) context.TryCancel();
  CheckStatus(name, reader->Finish(), /*waits=*/true);
}

int64_t Clamped(int64_t size) { return std::max<int64_t>(1, std::min<int64_t>(size, kMaxWorld)); }

// True when every world the topology could describe stays within kMaxWorld.
bool SmallWorld(const v1::Topology& topology) {
  int64_t world = 1;
  for (const v1::Dim& dim : topology.dims()) {
    world *= Clamped(dim.size());
    if (world > kMaxWorld) return false;
  }
  for (const v1::Mesh& mesh : topology.meshes()) {
    int64_t mesh_world = 1;
    for (const v1::Dim& dim : mesh.dims()) {
      mesh_world *= Clamped(dim.size());
      if (mesh_world > kMaxWorld) return false;
    }
  }
  return topology.world_size() <= kMaxWorld &&
         Clamped(topology.nodes().count()) * Clamped(topology.nodes().gpus_per_node()) <= kMaxWorld;
}

// The daemon under test, its clients, and the members of the cluster kCluster.
class Daemon {
 public:
  Daemon() {
    spdlog::set_level(spdlog::level::warn);
    splitd::daemon::ServerConfig config;
    config.listen = "127.0.0.1:0";
    config.shutdown_grace = absl::Seconds(1);
    const char* tmp = std::getenv("TEST_TMPDIR");
    const std::string dir = tmp != nullptr ? tmp : "/tmp";
    config.admin_token_file = absl::StrCat(dir, "/rpc_fuzzer_admin_", getpid());
    config.observer_token_file = absl::StrCat(dir, "/rpc_fuzzer_observer_", getpid());
    std::ofstream(config.admin_token_file) << kAdminToken << "\n";
    std::ofstream(config.observer_token_file) << kObserverToken << "\n";
    auto server = splitd::daemon::SplitdServer::Start(config, &clock_);
    // Read once: the fake clock never lets the daemon look at them again.
    std::remove(config.admin_token_file.c_str());
    std::remove(config.observer_token_file.c_str());
    if (!server.ok()) Fail(absl::StrCat("cannot start the daemon: ", server.status().ToString()));
    server_ = *std::move(server);
    auto channel = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    control_ = v1::ControlService::NewStub(channel);
    agent_ = v1::AgentService::NewStub(channel);
    authorization = absl::StrCat("Bearer ", kAdminToken);
    Seed();
    // Methods of the API this daemon does not serve yet are left out, said once.
    v1::ReconfigureResponse reconfigured;
    reconfigure_served_ = CallUnary(control_.get(), &v1::ControlService::Stub::Reconfigure,
                                    v1::ReconfigureRequest(), &reconfigured)
                              .error_code() != grpc::StatusCode::UNIMPLEMENTED;
    grpc::ClientContext context;
    context.set_deadline(In(kWaitDeadline));
    auto events = control_->WatchEvents(&context, v1::WatchEventsRequest());
    v1::Event event;
    if (events->Read(&event)) context.TryCancel();
    watch_events_served_ = events->Finish().error_code() != grpc::StatusCode::UNIMPLEMENTED;
    if (!reconfigure_served_) std::fprintf(stderr, "rpc_fuzzer: Reconfigure not served\n");
    if (!watch_events_served_) std::fprintf(stderr, "rpc_fuzzer: WatchEvents not served\n");
  }

  v1::ControlService::Stub* control() { return control_.get(); }
  v1::AgentService::Stub* agent() { return agent_.get(); }
  bool reconfigure_served() const { return reconfigure_served_; }
  bool watch_events_served() const { return watch_events_served_; }

  // The session token of member `index` (modulo the members).
  const std::string& SessionOf(int index) const {
    return members_[index % members_.size()].session_token();
  }

  // Replaces the request's credentials with those of member `speaker` - 1 (0 keeps them).
  template <typename Request>
  void SpeakAs(int speaker, Request* request) const {
    if (speaker > 0) *request->mutable_member() = members_[speaker - 1];
  }

  // The daemon still answers for kCluster; a cluster that inputs changed (new epoch, other
  // members) is set up afresh so that later inputs meet the same state.
  void CheckAndRestore() {
    authorization = absl::StrCat("Bearer ", kAdminToken);
    v1::GetStatusRequest request;
    request.set_cluster(kCluster);
    v1::GetStatusResponse response;
    const grpc::Status status =
        CallUnary(control_.get(), &v1::ControlService::Stub::GetStatus, request, &response);
    if (!status.ok()) {
      Fail(absl::StrCat("GetStatus of the seeded cluster: ", status.error_code(), " \"",
                        status.error_message(), "\""));
    }
    if (response.status().epoch() != 1 || response.status().fingerprint() != fingerprint_ ||
        response.status().registered_members() != kMembers ||
        response.status().lost_members() != 0 || response.status().excluded_members() != 0 ||
        !SameMembers(response.status())) {
      Seed();
    }
  }

 private:
  bool SameMembers(const v1::ClusterStatus& status) const {
    if (status.members_size() != static_cast<int>(members_.size())) return false;
    for (const v1::MemberStatus& member : status.members()) {
      bool found = false;
      for (const v1::MemberCredentials& seeded : members_) {
        found = found || seeded.member_id() == member.member_id();
      }
      if (!found) return false;
    }
    return true;
  }

  void Seed() {
    v1::DeleteClusterRequest remove;
    remove.set_name(kCluster);
    v1::DeleteClusterResponse removed;
    const grpc::Status deleted =
        CallUnary(control_.get(), &v1::ControlService::Stub::DeleteCluster, remove, &removed);
    if (!deleted.ok() && deleted.error_code() != grpc::StatusCode::NOT_FOUND) {
      Fail(absl::StrCat("seeding: DeleteCluster: ", deleted.error_message()));
    }
    v1::ApplyTopologyRequest apply;
    apply.mutable_topology()->set_cluster(kCluster);
    for (const char* name : {"tp", "pp"}) {
      v1::Dim* dim = apply.mutable_topology()->add_dims();
      dim->set_name(name);
      dim->set_size(2);
    }
    apply.set_join_token(kJoinToken);
    v1::ApplyTopologyResponse applied;
    const grpc::Status status =
        CallUnary(control_.get(), &v1::ControlService::Stub::ApplyTopology, apply, &applied);
    if (!status.ok()) Fail(absl::StrCat("seeding: ApplyTopology: ", status.error_message()));
    authorization = absl::StrCat("Bearer ", kJoinToken);
    fingerprint_ = applied.cluster().fingerprint();
    members_.clear();
    for (int i = 0; i < kMembers; ++i) {
      v1::RegisterRequest request;
      v1::MemberIdentity* identity = request.mutable_identity();
      identity->set_cluster(kCluster);
      identity->set_pod(absl::StrCat("pod-", i));
      identity->set_node("node-0");
      identity->set_host("127.0.0.1");
      identity->set_local_index(i);
      identity->set_incarnation(absl::StrCat("incarnation-", i, "-", ++incarnations_));
      request.mutable_capabilities()->add_backends("cpu:gloo");
      v1::RegisterResponse registered;
      const grpc::Status status =
          CallUnary(agent_.get(), &v1::AgentService::Stub::Register, request, &registered);
      if (!status.ok()) Fail(absl::StrCat("seeding: Register: ", status.error_message()));
      v1::MemberCredentials member;
      member.set_cluster(kCluster);
      member.set_member_id(registered.member_id());
      member.set_session_token(registered.session_token());
      members_.push_back(member);
    }
    authorization = absl::StrCat("Bearer ", kAdminToken);
  }

  splitd::FakeClock clock_;
  std::unique_ptr<splitd::daemon::SplitdServer> server_;
  std::unique_ptr<v1::ControlService::Stub> control_;
  std::unique_ptr<v1::AgentService::Stub> agent_;
  std::vector<v1::MemberCredentials> members_;
  std::string fingerprint_;
  int64_t incarnations_ = 0;
  bool reconfigure_served_ = false;
  bool watch_events_served_ = false;
};

template <typename Message>
bool Parse(const uint8_t* data, size_t size, Message* message) {
  return message->ParseFromArray(data, static_cast<int>(size));
}

using Control = v1::ControlService::Stub;
using Agent = v1::AgentService::Stub;

// Sets the bearer token of the next calls from `selector` (the input's second byte): the right
// token for the service `method` belongs to, none, the observer token, or a member's session.
void ChooseAuthorization(const Daemon& daemon, int method, uint8_t selector) {
  switch ((selector / (kMembers + 1)) % 4) {
    case 0:  // the right token for the service
      authorization = absl::StrCat("Bearer ", method == 8 ? kJoinToken : kAdminToken);
      break;
    case 1:
      authorization.clear();
      break;
    case 2:
      authorization = absl::StrCat("Bearer ", kObserverToken);
      break;
    default:
      authorization = absl::StrCat("Bearer ", daemon.SessionOf(selector));
      break;
  }
}

// The Send* functions return false when they drop the input before calling (it does not parse,
// plans too large a world, or asks for a method the daemon does not serve) and the caller skips
// its check of the daemon; true otherwise.

// A unary call with the request as parsed; one that does not parse is not sent, but the daemon
// is still checked.
template <typename Stub, typename Request, typename Response>
bool SendUnary(const char* name, Stub* stub,
               grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
               const uint8_t* data, size_t size) {
  Request request;
  if (Parse(data, size, &request)) Unary(name, stub, method, request);
  return true;
}

// An AgentService call that speaks as member `speaker` - 1 (0 keeps the fuzzed credentials).
template <typename Request, typename Response>
bool SendUnaryAs(const char* name, Daemon* daemon, int speaker,
                 grpc::Status (Agent::*method)(grpc::ClientContext*, const Request&, Response*),
                 const uint8_t* data, size_t size) {
  Request request;
  if (!Parse(data, size, &request)) return false;
  daemon->SpeakAs(speaker, &request);
  Unary(name, daemon->agent(), method, request);
  return true;
}

bool SendApplyTopology(Control* control, const uint8_t* data, size_t size) {
  v1::ApplyTopologyRequest request;
  if (!Parse(data, size, &request) || !SmallWorld(request.topology())) return false;
  v1::ApplyTopologyResponse response;
  const grpc::Status status = CallUnary(control, &Control::ApplyTopology, request, &response);
  CheckStatus("ApplyTopology", status, false);
  // Clusters other than the seeded one do not outlive their input.
  if (status.ok() && response.created()) {
    v1::DeleteClusterRequest remove;
    remove.set_name(response.cluster().name());
    v1::DeleteClusterResponse removed;
    const grpc::Status deleted = CallUnary(control, &Control::DeleteCluster, remove, &removed);
    if (!deleted.ok()) {
      Fail(absl::StrCat("DeleteCluster of a cluster just created: ", deleted.error_message()));
    }
  }
  return true;
}

// Any cluster but the seeded one.
bool SendDeleteCluster(Control* control, const uint8_t* data, size_t size) {
  v1::DeleteClusterRequest request;
  if (Parse(data, size, &request) && request.name() != kCluster) {
    Unary("DeleteCluster", control, &Control::DeleteCluster, request);
  }
  return true;
}

// Only changes whose world stays within kMaxWorld.
bool SendReconfigure(Daemon* daemon, const uint8_t* data, size_t size) {
  v1::ReconfigureRequest request;
  if (!daemon->reconfigure_served() || !Parse(data, size, &request)) return false;
  int64_t world = 4;  // the seeded cluster's
  for (const auto& [name, dim_size] : request.change().set_dims()) {
    world *= Clamped(dim_size);
    if (world > kMaxWorld) return false;
  }
  Unary("Reconfigure", daemon->control(), &Control::Reconfigure, request);
  return true;
}

bool SendWatchEvents(Daemon* daemon, const uint8_t* data, size_t size) {
  v1::WatchEventsRequest request;
  if (daemon->watch_events_served() && Parse(data, size, &request)) {
    Stream("WatchEvents", daemon->control(), &Control::WatchEvents, request);
  }
  return true;
}

bool SendWatchPlan(Daemon* daemon, int speaker, const uint8_t* data, size_t size) {
  v1::WatchPlanRequest request;
  if (!Parse(data, size, &request)) return false;
  daemon->SpeakAs(speaker, &request);
  Stream("WatchPlan", daemon->agent(), &Agent::WatchPlan, request);
  return true;
}

// KvGet waits for its key: cut short by kWaitDeadline.
bool SendKvGet(Daemon* daemon, int speaker, const uint8_t* data, size_t size) {
  v1::KvGetRequest request;
  if (!Parse(data, size, &request)) return false;
  daemon->SpeakAs(speaker, &request);
  v1::KvGetResponse response;
  CheckStatus("KvGet", CallUnary(daemon->agent(), &Agent::KvGet, request, &response, kWaitDeadline),
              /*waits=*/true);
  return true;
}

// Sends the request of method number `method` (0-17), parsed from `data`; false when the input
// was dropped before any call, as above.
bool SendRequest(Daemon* daemon, int method, int speaker, const uint8_t* data, size_t size) {
  Control* control = daemon->control();
  Agent* agent = daemon->agent();
  switch (method) {
    case 0:
      return SendApplyTopology(control, data, size);
    case 1:
      return SendUnary("GetCluster", control, &Control::GetCluster, data, size);
    case 2:
      return SendUnary("ListClusters", control, &Control::ListClusters, data, size);
    case 3:
      return SendDeleteCluster(control, data, size);
    case 4:
      return SendUnary("GetPlan", control, &Control::GetPlan, data, size);
    case 5:
      return SendUnary("GetStatus", control, &Control::GetStatus, data, size);
    case 6:
      return SendReconfigure(daemon, data, size);
    case 7:
      return SendWatchEvents(daemon, data, size);
    case 8:
      return SendUnary("Register", agent, &Agent::Register, data, size);
    case 9:
      return SendWatchPlan(daemon, speaker, data, size);
    case 10:
      return SendUnaryAs("Heartbeat", daemon, speaker, &Agent::Heartbeat, data, size);
    case 11:
      return SendUnaryAs("ReportGroupStatus", daemon, speaker, &Agent::ReportGroupStatus, data,
                         size);
    case 12:
      return SendUnaryAs("KvSet", daemon, speaker, &Agent::KvSet, data, size);
    case 13:
      return SendKvGet(daemon, speaker, data, size);
    case 14:
      return SendUnaryAs("KvAdd", daemon, speaker, &Agent::KvAdd, data, size);
    case 15:
      return SendUnaryAs("KvCompareSet", daemon, speaker, &Agent::KvCompareSet, data, size);
    case 16:
      return SendUnaryAs("KvCheck", daemon, speaker, &Agent::KvCheck, data, size);
    default:
      return SendUnaryAs("KvDelete", daemon, speaker, &Agent::KvDelete, data, size);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Daemon* daemon = new Daemon();
  if (size < 2) return 0;
  const int method = data[0] % 18;
  const int speaker = data[1] % (kMembers + 1);
  ChooseAuthorization(*daemon, method, data[1]);
  if (SendRequest(daemon, method, speaker, data + 2, size - 2)) daemon->CheckAndRestore();
  return 0;
}
