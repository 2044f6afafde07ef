#ifndef SPLITD_DAEMON_RPC_METRICS_H_
#define SPLITD_DAEMON_RPC_METRICS_H_

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <unordered_map>

#include "absl/synchronization/mutex.h"
#include "common/metrics.h"
#include "grpcpp/support/server_interceptor.h"

namespace splitd::daemon {

// Counts and times every gRPC call the daemon serves, by method and final status code
// (splitd_rpc_requests_total, splitd_rpc_duration_seconds), as a server interceptor: the
// handlers know nothing of it. A call is measured from the moment gRPC matches it to a method
// until its status is sent, so a stream (WatchPlan, WatchEvents) counts once, when it ends.
// Methods that no linked service defines are labelled "unknown", so that clients cannot grow
// the number of series.
//
// Threading: thread-safe; gRPC creates one interceptor per call. The registry must outlive the
// gRPC server that owns this factory.
class RpcMetrics : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetrics(metrics::Registry* registry);

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

  // `method` ("/splitd.v1.AgentService/Register") when a linked service defines it, "unknown"
  // otherwise.
  static std::string MethodLabel(const char* method);

 private:
  friend class RpcMetricsInterceptor;

  // One method's series, resolved once per status code (gRPC's codes are 0 to 16), so that a
  // call costs one map lookup and two atomic loads rather than label lookups under locks.
  struct MethodSeries {
    std::string label;
    std::array<std::atomic<metrics::Counter*>, 17> requests{};
    std::array<std::atomic<metrics::Histogram*>, 17> durations{};
  };

  MethodSeries* SeriesOf(const char* method) ABSL_LOCKS_EXCLUDED(mu_);
  // Counts one call of `series` that ended with `code` after `seconds`.
  void Record(MethodSeries* series, grpc::StatusCode code, double seconds);

  metrics::CounterFamily& requests_;
  metrics::HistogramFamily& durations_;
  MethodSeries unknown_;  // every method no service defines
  absl::Mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<MethodSeries>> by_method_ ABSL_GUARDED_BY(mu_);
};

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_RPC_METRICS_H_
