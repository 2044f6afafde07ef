#ifndef SPLITD_DAEMON_RPC_METRICS_H_
#define SPLITD_DAEMON_RPC_METRICS_H_

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <unordered_map>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/metrics.h"
#include "grpcpp/support/status.h"

namespace splitd::daemon {

// Counts and times the gRPC calls the daemon's services answer, by method and final status code
// (splitd_rpc_requests_total, splitd_rpc_duration_seconds). The service adapters report each
// call as it ends (RpcTimer): from the moment its handler runs until its status is sent, so a
// stream (WatchPlan, WatchEvents) counts once, when it ends. Calls gRPC refuses before a handler
// runs (an unknown method, an oversized request) and the health and reflection services are not
// counted. A server interceptor would count those too but costs every call several times more
// (docs/benchmarks.md). Methods that no linked service defines are labelled "unknown".
//
// Threading: thread-safe. The registry must outlive this object.
class RpcMetrics {
 public:
  explicit RpcMetrics(metrics::Registry* registry);

  // One call of `method` ("/splitd.v1.AgentService/Register") that ended with `code` after
  // `elapsed`.
  void Record(absl::string_view method, grpc::StatusCode code, absl::Duration elapsed)
      ABSL_LOCKS_EXCLUDED(mu_);

  // `method` when a linked service defines it, "unknown" otherwise.
  static std::string MethodLabel(const char* method);

 private:
  // One method's series, resolved once per status code (gRPC's codes are 0 to 16), so that a
  // call costs one map lookup and two atomic loads rather than label lookups under locks.
  struct MethodSeries {
    std::string label;
    std::array<std::atomic<metrics::Counter*>, 17> requests{};
    std::array<std::atomic<metrics::Histogram*>, 17> durations{};
  };

  MethodSeries* SeriesOf(absl::string_view method) ABSL_LOCKS_EXCLUDED(mu_);

  metrics::CounterFamily& requests_;
  metrics::HistogramFamily& durations_;
  MethodSeries unknown_;  // every method no service defines
  absl::Mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<MethodSeries>> by_method_ ABSL_GUARDED_BY(mu_);
};

// One call being answered: its method and when its handler started. Reports the call to
// RpcMetrics (nothing when there is none) once it ends.
class RpcTimer {
 public:
  // `service` and `method` must be string literals ("splitd.v1.AgentService", "Register").
  RpcTimer(RpcMetrics* metrics, const char* service, const char* method)
      : metrics_(metrics), service_(service), method_(method), start_(absl::Now()) {}

  // The service's full name ("splitd.v1.AgentService") and the method's short name
  // ("Register"), for log lines and authorization.
  const char* service() const { return service_; }
  const char* method() const { return method_; }

  void Record(grpc::StatusCode code) const;

 private:
  RpcMetrics* metrics_;
  const char* service_;
  const char* method_;
  absl::Time start_;
};

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_RPC_METRICS_H_
