#ifndef SPLITD_TESTS_TESTING_FAKE_AGENT_SERVICE_H_
#define SPLITD_TESTS_TESTING_FAKE_AGENT_SERVICE_H_

#include <functional>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "splitd/v1/agent_service.grpc.pb.h"

namespace splitd::testing {

// A daemon stand-in for one agent: registers it as member "m-1" with session token "secret" and a
// 50 ms heartbeat interval, streams the plans the test publishes to a watcher with that session,
// answers heartbeats and records reports. The rendezvous RPCs are left to subclasses.
// Thread-safe.
class FakeAgentService : public v1::AgentService::Service {
 public:
  void Publish(v1::WatchPlanResponse message);
  std::vector<v1::ReportGroupStatusRequest> reports();
  // The identity of the last Register.
  v1::MemberIdentity identity();

  // Waits until a report for which `match` holds arrived; false after 20 s.
  bool AwaitReport(const std::function<bool(const v1::ReportGroupStatusRequest&)>& match);

  grpc::Status Register(grpc::ServerContext*, const v1::RegisterRequest* request,
                        v1::RegisterResponse* response) override;
  grpc::Status WatchPlan(grpc::ServerContext* context, const v1::WatchPlanRequest* request,
                         grpc::ServerWriter<v1::WatchPlanResponse>* writer) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status ReportGroupStatus(grpc::ServerContext*, const v1::ReportGroupStatusRequest* request,
                                 v1::ReportGroupStatusResponse*) override;

 private:
  absl::Mutex mu_;
  std::vector<v1::WatchPlanResponse> plans_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::ReportGroupStatusRequest> reports_ ABSL_GUARDED_BY(mu_);
  v1::MemberIdentity identity_ ABSL_GUARDED_BY(mu_);
};

}  // namespace splitd::testing

#endif  // SPLITD_TESTS_TESTING_FAKE_AGENT_SERVICE_H_
