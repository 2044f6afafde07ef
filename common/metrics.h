#ifndef SPLITD_COMMON_METRICS_H_
#define SPLITD_COMMON_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace splitd::metrics {

// A metric that only goes up (requests served, epochs started).
//
// Threading: thread-safe, lock-free.
class Counter {
 public:
  // `amount` must not be negative.
  void Increment(double amount = 1);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A metric that goes up and down (clusters in a phase).
//
// Threading: thread-safe, lock-free.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double amount);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted into buckets by upper bound, with their sum and count (a Prometheus
// histogram: the rendered buckets are cumulative, the last one is +Inf).
//
// Threading: thread-safe.
class Histogram {
 public:
  // `bounds` are the finite upper bounds, strictly increasing.
  explicit Histogram(std::vector<double> bounds);

  void Observe(double value);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> counts;  // per bound (not cumulative), then one for +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  // Bucket counts, sum and count read at one instant.
  Snapshot Read() const;

 private:
  const std::vector<double> bounds_;
  mutable absl::Mutex mu_;
  std::vector<uint64_t> counts_ ABSL_GUARDED_BY(mu_);
  double sum_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t count_ ABSL_GUARDED_BY(mu_) = 0;
};

enum class Type { kCounter, kGauge, kHistogram };

// What every family has: a name, a help line, a type and the names of its labels.
struct Descriptor {
  std::string name;
  std::string help;
  Type type = Type::kGauge;
  std::vector<std::string> label_names;
};

// Everything a registry can render.
class Collector {
 public:
  virtual ~Collector() = default;
  const Descriptor& descriptor() const { return descriptor_; }
  // Appends the family's samples (without HELP and TYPE) in the text format.
  virtual void RenderSamples(std::string* out) const = 0;

 protected:
  explicit Collector(Descriptor descriptor) : descriptor_(std::move(descriptor)) {}

 private:
  const Descriptor descriptor_;
};

// One metric per combination of label values, created on first use. References returned by
// WithLabels stay valid as long as the family.
//
// Threading: thread-safe; keep the returned reference rather than looking it up per event on
// hot paths.
template <typename Metric>
class Family : public Collector {
 public:
  using Factory = std::function<std::unique_ptr<Metric>()>;

  Family(Descriptor descriptor, Factory factory)
      : Collector(std::move(descriptor)), factory_(std::move(factory)) {}

  // The metric of these label values, one per label name in order. A different number of
  // values is a programmer error (the process aborts).
  Metric& WithLabels(const std::vector<std::string>& values);

  void RenderSamples(std::string* out) const override;

 private:
  const Factory factory_;
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> metrics_ ABSL_GUARDED_BY(mu_);
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// One value of a gauge computed at scrape time.
struct LabeledValue {
  std::vector<std::string> label_values;
  double value = 0;
};

// A gauge family whose samples a callback computes at each scrape (counts read from the state
// they describe, so they never drift from it).
class CallbackGaugeFamily : public Collector {
 public:
  using Callback = std::function<std::vector<LabeledValue>()>;
  CallbackGaugeFamily(Descriptor descriptor, Callback callback)
      : Collector(std::move(descriptor)), callback_(std::move(callback)) {}

  void RenderSamples(std::string* out) const override;

 private:
  const Callback callback_;
};

// The metrics of one process, rendered in the Prometheus text exposition format 0.0.4, families
// in the order they were added, series sorted by label values. Names must match
// [a-zA-Z_:][a-zA-Z0-9_:]* and label names [a-zA-Z_][a-zA-Z0-9_]* (not "le" nor starting with
// "__"); a bad name or a name added twice is a programmer error (the process aborts).
//
// Threading: thread-safe. Callbacks run on the rendering thread without the registry's lock;
// whatever they read must outlive the registry or rendering must stop first.
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  CounterFamily& AddCounter(const std::string& name, const std::string& help,
                            std::vector<std::string> label_names = {});
  GaugeFamily& AddGauge(const std::string& name, const std::string& help,
                        std::vector<std::string> label_names = {});
  // `bounds`: finite bucket upper bounds, strictly increasing.
  HistogramFamily& AddHistogram(const std::string& name, const std::string& help,
                                std::vector<std::string> label_names, std::vector<double> bounds);
  void AddCallbackGauge(const std::string& name, const std::string& help,
                        std::vector<std::string> label_names,
                        CallbackGaugeFamily::Callback callback);

  std::string Render() const;

 private:
  Collector& Add(std::unique_ptr<Collector> collector);

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Collector>> collectors_ ABSL_GUARDED_BY(mu_);
};

// Content-Type of Registry::Render's output.
inline constexpr char kTextContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// A sample value as the text format writes it: whole numbers without a fraction, others as the
// shortest decimal that reads back exactly (an exponent when very small or large), "+Inf",
// "-Inf", "NaN".
std::string FormatValue(double value);

// A label value with `\`, `"` and newline escaped.
std::string EscapeLabelValue(const std::string& value);

}  // namespace splitd::metrics

#endif  // SPLITD_COMMON_METRICS_H_
