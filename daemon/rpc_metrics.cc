#include "daemon/rpc_metrics.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"

namespace splitd::daemon {
namespace {

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

RpcMetrics::RpcMetrics(metrics::Registry* registry)
    : requests_(registry->AddCounter("splitd_rpc_requests_total",
                                     "gRPC calls answered, by method and final status code.",
                                     {"method", "code"})),
      durations_(registry->AddHistogram(
          "splitd_rpc_duration_seconds",
          "Time from the start of a gRPC call's handler to its status, by method and status code.",
          {"method", "code"}, DurationBounds())) {
  unknown_.label = "unknown";
}

RpcMetrics::MethodSeries* RpcMetrics::SeriesOf(absl::string_view method) {
  {
    absl::MutexLock lock(&mu_);
    auto it = by_method_.find(std::string(method));
    if (it != by_method_.end()) return it->second.get();
  }
  // Only methods a service defines get an entry: other names cannot grow the map.
  std::string label = MethodLabel(std::string(method).c_str());
  if (label == unknown_.label) return &unknown_;
  absl::MutexLock lock(&mu_);
  std::unique_ptr<MethodSeries>& series = by_method_[label];
  if (series == nullptr) {
    series = std::make_unique<MethodSeries>();
    series->label = std::move(label);
  }
  return series.get();
}

void RpcMetrics::Record(absl::string_view method, grpc::StatusCode code, absl::Duration elapsed) {
  MethodSeries* series = SeriesOf(method);
  const size_t index = code >= 0 && static_cast<size_t>(code) < series->requests.size()
                           ? static_cast<size_t>(code)
                           : static_cast<size_t>(grpc::StatusCode::UNKNOWN);
  const std::string code_label = CodeLabel(static_cast<grpc::StatusCode>(index));
  metrics::Counter* counter = series->requests[index].load(std::memory_order_acquire);
  if (counter == nullptr) {
    counter = &requests_.WithLabels({series->label, code_label});
    series->requests[index].store(counter, std::memory_order_release);
  }
  metrics::Histogram* histogram = series->durations[index].load(std::memory_order_acquire);
  if (histogram == nullptr) {
    histogram = &durations_.WithLabels({series->label, code_label});
    series->durations[index].store(histogram, std::memory_order_release);
  }
  counter->Increment();
  histogram->Observe(absl::ToDoubleSeconds(elapsed));
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
  if (google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(full_name) == nullptr) {
    return "unknown";
  }
  return std::string(path);
}

void RpcTimer::Record(grpc::StatusCode code) const {
  if (metrics_ == nullptr) return;
  metrics_->Record(absl::StrCat("/", service_, "/", method_), code, absl::Now() - start_);
}

}  // namespace splitd::daemon
