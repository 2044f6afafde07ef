#include "daemon/rpc_metrics.h"

#include <chrono>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/support/interceptor.h"

namespace splitd::daemon {
namespace {

using ::grpc::experimental::InterceptionHookPoints;

// Half a millisecond (a cached read) to a minute (a store write stuck on a slow disk).
const std::vector<double>& DurationBounds() {
  static const auto* bounds = new std::vector<double>{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  return *bounds;
}

std::string CodeLabel(grpc::StatusCode code) {
  // gRPC's codes and Abseil's are the same numbers with the same names.
  const std::string name = absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
  return name.empty() ? "UNKNOWN" : name;
}

}  // namespace

class RpcMetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(RpcMetrics* metrics, RpcMetrics::MethodSeries* series)
      : metrics_(metrics), series_(series), start_(std::chrono::steady_clock::now()) {}

  ~RpcMetricsInterceptor() override {
    // A call torn down without sending a status (the server shut down under it).
    if (!recorded_) Record(grpc::StatusCode::CANCELLED);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      Record(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Record(grpc::StatusCode code) {
    recorded_ = true;
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start_;
    metrics_->Record(series_, code, elapsed.count());
  }

  RpcMetrics* const metrics_;
  RpcMetrics::MethodSeries* const series_;
  const std::chrono::steady_clock::time_point start_;
  bool recorded_ = false;  // hooks of one call never run concurrently
};

RpcMetrics::RpcMetrics(metrics::Registry* registry)
    : requests_(registry->AddCounter("splitd_rpc_requests_total",
                                     "gRPC calls served, by method and final status code.",
                                     {"method", "code"})),
      durations_(registry->AddHistogram(
          "splitd_rpc_duration_seconds",
          "Time from the start of a gRPC call to its status, by method and status code.",
          {"method", "code"}, DurationBounds())) {
  unknown_.label = "unknown";
}

grpc::experimental::Interceptor* RpcMetrics::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new RpcMetricsInterceptor(this, SeriesOf(info->method()));
}

RpcMetrics::MethodSeries* RpcMetrics::SeriesOf(const char* method) {
  if (method == nullptr) return &unknown_;
  {
    absl::MutexLock lock(&mu_);
    auto it = by_method_.find(method);
    if (it != by_method_.end()) return it->second.get();
  }
  // Only methods a service defines get an entry: other names cannot grow the map.
  std::string label = MethodLabel(method);
  if (label == unknown_.label) return &unknown_;
  absl::MutexLock lock(&mu_);
  std::unique_ptr<MethodSeries>& series = by_method_[label];
  if (series == nullptr) {
    series = std::make_unique<MethodSeries>();
    series->label = std::move(label);
  }
  return series.get();
}

void RpcMetrics::Record(MethodSeries* series, grpc::StatusCode code, double seconds) {
  const size_t index =
      code >= 0 && static_cast<size_t>(code) < series->requests.size()
          ? static_cast<size_t>(code)
          : static_cast<size_t>(grpc::StatusCode::UNKNOWN);
  metrics::Counter* counter = series->requests[index].load(std::memory_order_acquire);
  if (counter == nullptr) {
    counter = &requests_.WithLabels(
        {series->label, CodeLabel(static_cast<grpc::StatusCode>(index))});
    series->requests[index].store(counter, std::memory_order_release);
  }
  metrics::Histogram* histogram = series->durations[index].load(std::memory_order_acquire);
  if (histogram == nullptr) {
    histogram = &durations_.WithLabels(
        {series->label, CodeLabel(static_cast<grpc::StatusCode>(index))});
    series->durations[index].store(histogram, std::memory_order_release);
  }
  counter->Increment();
  histogram->Observe(seconds);
}

std::string RpcMetrics::MethodLabel(const char* method) {
  if (method == nullptr) return "unknown";
  // "/package.Service/Method" is "package.Service.Method" to the descriptor pool.
  const absl::string_view path(method);
  const size_t slash = path.rfind('/');
  if (path.size() < 4 || path[0] != '/' || slash == 0 || slash + 1 >= path.size()) {
    return "unknown";
  }
  std::string full_name(path.substr(1));
  full_name[slash - 1] = '.';
  if (google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(full_name) ==
      nullptr) {
    return "unknown";
  }
  return std::string(path);
}

}  // namespace splitd::daemon
