#include "common/metrics.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace splitd::metrics {
namespace {

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "metrics: %s\n", message.c_str());
  std::abort();
}

void AddTo(std::atomic<double>& value, double amount) {
  double current = value.load(std::memory_order_relaxed);
  while (!value.compare_exchange_weak(current, current + amount, std::memory_order_relaxed)) {
  }
}

bool ValidName(const std::string& name, bool allow_colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':');
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

void CheckDescriptor(const Descriptor& descriptor) {
  if (!ValidName(descriptor.name, /*allow_colon=*/true)) {
    Die(absl::StrCat("bad metric name \"", descriptor.name, "\""));
  }
  for (const std::string& label : descriptor.label_names) {
    if (!ValidName(label, /*allow_colon=*/false) || label.rfind("__", 0) == 0 ||
        (descriptor.type == Type::kHistogram && label == "le")) {
      Die(absl::StrCat("metric ", descriptor.name, ": bad label name \"", label, "\""));
    }
  }
}

// `\` and newline escaped, and `"` too when `quotes` (label values; HELP text keeps them).
std::string Escape(const std::string& text, bool quotes) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

const char* TypeName(Type type) {
  switch (type) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// `{a="x",b="y"}` for the family's label names and `values`, plus an optional last label (a
// histogram's "le"); empty when there are no labels at all.
std::string LabelText(const std::vector<std::string>& names, const std::vector<std::string>& values,
                      const std::string& extra_name = "", const std::string& extra_value = "") {
  std::vector<std::string> pairs;
  for (size_t i = 0; i < names.size(); ++i) {
    pairs.push_back(absl::StrCat(names[i], "=\"", EscapeLabelValue(values[i]), "\""));
  }
  if (!extra_name.empty()) {
    pairs.push_back(absl::StrCat(extra_name, "=\"", EscapeLabelValue(extra_value), "\""));
  }
  if (pairs.empty()) return "";
  return absl::StrCat("{", absl::StrJoin(pairs, ","), "}");
}

void AppendSample(const std::string& name, const std::string& labels, double value,
                  std::string* out) {
  absl::StrAppend(out, name, labels, " ", FormatValue(value), "\n");
}

void AppendSamples(const Descriptor& descriptor, const std::vector<std::string>& values,
                   const Counter& counter, std::string* out) {
  AppendSample(descriptor.name, LabelText(descriptor.label_names, values), counter.value(), out);
}

void AppendSamples(const Descriptor& descriptor, const std::vector<std::string>& values,
                   const Gauge& gauge, std::string* out) {
  AppendSample(descriptor.name, LabelText(descriptor.label_names, values), gauge.value(), out);
}

void AppendSamples(const Descriptor& descriptor, const std::vector<std::string>& values,
                   const Histogram& histogram, std::string* out) {
  const Histogram::Snapshot snapshot = histogram.Read();
  const std::string bucket = descriptor.name + "_bucket";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < snapshot.counts.size(); ++i) {
    cumulative += snapshot.counts[i];
    const std::string le =
        i < snapshot.bounds.size() ? FormatValue(snapshot.bounds[i]) : std::string("+Inf");
    AppendSample(bucket, LabelText(descriptor.label_names, values, "le", le),
                 static_cast<double>(cumulative), out);
  }
  const std::string labels = LabelText(descriptor.label_names, values);
  AppendSample(descriptor.name + "_sum", labels, snapshot.sum, out);
  AppendSample(descriptor.name + "_count", labels, static_cast<double>(snapshot.count), out);
}

}  // namespace

void Counter::Increment(double amount) {
  if (amount < 0) Die(absl::StrCat("counter decremented by ", amount));
  AddTo(value_, amount);
}

void Gauge::Add(double amount) { AddTo(value_, amount); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && bounds_[i] <= bounds_[i - 1])) {
      Die("histogram bounds must be finite and strictly increasing");
    }
  }
}

void Histogram::Observe(double value) {
  // The first bucket whose upper bound holds the value (bounds are inclusive); +Inf otherwise.
  size_t index = 0;
  while (index < bounds_.size() && value > bounds_[index]) ++index;
  absl::MutexLock lock(&mu_);
  ++counts_[index];
  sum_ += value;
  ++count_;
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot snapshot;
  snapshot.bounds = bounds_;
  absl::MutexLock lock(&mu_);
  snapshot.counts = counts_;
  snapshot.sum = sum_;
  snapshot.count = count_;
  return snapshot;
}

template <typename Metric>
Metric& Family<Metric>::WithLabels(const std::vector<std::string>& values) {
  if (values.size() != descriptor().label_names.size()) {
    Die(absl::StrCat("metric ", descriptor().name, " has ", descriptor().label_names.size(),
                     " labels, got ", values.size(), " values"));
  }
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Metric>& metric = metrics_[values];
  if (metric == nullptr) metric = factory_();
  return *metric;
}

template <typename Metric>
void Family<Metric>::RenderSamples(std::string* out) const {
  // Rendering reads each metric's own synchronized state; the family's lock only keeps the
  // map steady while it is walked.
  absl::MutexLock lock(&mu_);
  for (const auto& [values, metric] : metrics_) {
    AppendSamples(descriptor(), values, *metric, out);
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

void CallbackGaugeFamily::RenderSamples(std::string* out) const {
  std::vector<LabeledValue> values = callback_();
  std::map<std::vector<std::string>, double> sorted;
  for (LabeledValue& value : values) {
    if (value.label_values.size() != descriptor().label_names.size()) {
      Die(absl::StrCat("metric ", descriptor().name, " has ", descriptor().label_names.size(),
                       " labels, its callback gave ", value.label_values.size(), " values"));
    }
    sorted[std::move(value.label_values)] = value.value;
  }
  for (const auto& [labels, value] : sorted) {
    AppendSample(descriptor().name, LabelText(descriptor().label_names, labels), value, out);
  }
}

CounterFamily& Registry::AddCounter(const std::string& name, const std::string& help,
                                    std::vector<std::string> label_names) {
  return static_cast<CounterFamily&>(Add(std::make_unique<CounterFamily>(
      Descriptor{name, help, Type::kCounter, std::move(label_names)},
      [] { return std::make_unique<Counter>(); })));
}

GaugeFamily& Registry::AddGauge(const std::string& name, const std::string& help,
                                std::vector<std::string> label_names) {
  return static_cast<GaugeFamily&>(Add(
      std::make_unique<GaugeFamily>(Descriptor{name, help, Type::kGauge, std::move(label_names)},
                                    [] { return std::make_unique<Gauge>(); })));
}

HistogramFamily& Registry::AddHistogram(const std::string& name, const std::string& help,
                                        std::vector<std::string> label_names,
                                        std::vector<double> bounds) {
  Histogram check(bounds);  // bad bounds fail here, at registration, not at first use
  return static_cast<HistogramFamily&>(Add(std::make_unique<HistogramFamily>(
      Descriptor{name, help, Type::kHistogram, std::move(label_names)},
      [bounds] { return std::make_unique<Histogram>(bounds); })));
}

void Registry::AddCallbackGauge(const std::string& name, const std::string& help,
                                std::vector<std::string> label_names,
                                CallbackGaugeFamily::Callback callback) {
  Add(std::make_unique<CallbackGaugeFamily>(
      Descriptor{name, help, Type::kGauge, std::move(label_names)}, std::move(callback)));
}

Collector& Registry::Add(std::unique_ptr<Collector> collector) {
  CheckDescriptor(collector->descriptor());
  absl::MutexLock lock(&mu_);
  for (const std::unique_ptr<Collector>& existing : collectors_) {
    if (existing->descriptor().name == collector->descriptor().name) {
      Die(absl::StrCat("metric ", collector->descriptor().name, " added twice"));
    }
  }
  collectors_.push_back(std::move(collector));
  return *collectors_.back();
}

std::string Registry::Render() const {
  std::vector<const Collector*> collectors;
  {
    absl::MutexLock lock(&mu_);
    for (const std::unique_ptr<Collector>& collector : collectors_) {
      collectors.push_back(collector.get());
    }
  }
  // Collectors are never removed, so they outlive this walk; callbacks run without mu_.
  std::string out;
  for (const Collector* collector : collectors) {
    const Descriptor& descriptor = collector->descriptor();
    absl::StrAppend(&out, "# HELP ", descriptor.name, " ",
                    Escape(descriptor.help, /*quotes=*/false), "\n");
    absl::StrAppend(&out, "# TYPE ", descriptor.name, " ", TypeName(descriptor.type), "\n");
    collector->RenderSamples(&out);
  }
  return out;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::trunc(value) && std::fabs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  // Plain decimals where they are short (bucket bounds such as 0.0005), exponents otherwise.
  const double magnitude = std::fabs(value);
  const std::chars_format format = magnitude >= 1e-4 && magnitude < 1e15
                                       ? std::chars_format::fixed
                                       : std::chars_format::scientific;
  char buffer[64];
  const std::to_chars_result result = std::to_chars(buffer, buffer + sizeof(buffer), value, format);
  return std::string(buffer, result.ptr);
}

std::string EscapeLabelValue(const std::string& value) { return Escape(value, /*quotes=*/true); }

}  // namespace splitd::metrics
