#include "common/metrics.h"

#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace splitd::metrics {
namespace {

using ::testing::HasSubstr;

TEST(MetricsTest, RendersASmallRegistryExactly) {
  Registry registry;
  CounterFamily& requests =
      registry.AddCounter("app_requests_total", "Requests served.", {"method", "code"});
  Gauge& temperature =
      registry.AddGauge("app_temperature_celsius", "Current temperature.").WithLabels({});
  HistogramFamily& latency =
      registry.AddHistogram("app_latency_seconds", "Request latency.", {"method"}, {0.1, 1});
  registry.AddCallbackGauge("app_items", "Items by state.", {"state"}, [] {
    return std::vector<LabeledValue>{{{"b"}, 2}, {{"a"}, 1}};
  });

  requests.WithLabels({"Get", "OK"}).Increment();
  requests.WithLabels({"Get", "OK"}).Increment(2);
  requests.WithLabels({"Get", "NOT_FOUND"}).Increment();
  temperature.Set(-3.5);
  latency.WithLabels({"Get"}).Observe(0.05);
  latency.WithLabels({"Get"}).Observe(0.1);  // bounds are inclusive
  latency.WithLabels({"Get"}).Observe(0.5);
  latency.WithLabels({"Get"}).Observe(7);

  EXPECT_EQ(registry.Render(),
            "# HELP app_requests_total Requests served.\n"
            "# TYPE app_requests_total counter\n"
            "app_requests_total{method=\"Get\",code=\"NOT_FOUND\"} 1\n"
            "app_requests_total{method=\"Get\",code=\"OK\"} 3\n"
            "# HELP app_temperature_celsius Current temperature.\n"
            "# TYPE app_temperature_celsius gauge\n"
            "app_temperature_celsius -3.5\n"
            "# HELP app_latency_seconds Request latency.\n"
            "# TYPE app_latency_seconds histogram\n"
            "app_latency_seconds_bucket{method=\"Get\",le=\"0.1\"} 2\n"
            "app_latency_seconds_bucket{method=\"Get\",le=\"1\"} 3\n"
            "app_latency_seconds_bucket{method=\"Get\",le=\"+Inf\"} 4\n"
            "app_latency_seconds_sum{method=\"Get\"} 7.65\n"
            "app_latency_seconds_count{method=\"Get\"} 4\n"
            "# HELP app_items Items by state.\n"
            "# TYPE app_items gauge\n"
            "app_items{state=\"a\"} 1\n"
            "app_items{state=\"b\"} 2\n");
}

TEST(MetricsTest, FamilyWithoutSeriesHasOnlyHelpAndType) {
  Registry registry;
  registry.AddCounter("app_errors_total", "Errors.", {"kind"});
  EXPECT_EQ(registry.Render(),
            "# HELP app_errors_total Errors.\n"
            "# TYPE app_errors_total counter\n");
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  Registry registry;
  registry.AddGauge("app_info", "Help with \\ and\nnewline; \"quotes\" stay.", {"path"})
      .WithLabels({"C:\\dir \"x\"\nend"})
      .Set(1);
  EXPECT_EQ(registry.Render(),
            "# HELP app_info Help with \\\\ and\\nnewline; \"quotes\" stay.\n"
            "# TYPE app_info gauge\n"
            "app_info{path=\"C:\\\\dir \\\"x\\\"\\nend\"} 1\n");
}

TEST(MetricsTest, EscapeLabelValueLeavesOtherBytesAlone) {
  EXPECT_EQ(EscapeLabelValue("plain/π\t"), "plain/π\t");
  EXPECT_EQ(EscapeLabelValue("\\\"\n"), "\\\\\\\"\\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry registry;
  Histogram& histogram =
      registry.AddHistogram("app_size_bytes", "Sizes.", {}, {1, 10, 100}).WithLabels({});
  for (double value : {0.5, 1.0, 2.0, 50.0, 50.0, 1000.0}) histogram.Observe(value);

  const Histogram::Snapshot snapshot = histogram.Read();
  EXPECT_THAT(snapshot.counts, ::testing::ElementsAre(2, 1, 2, 1));
  EXPECT_EQ(snapshot.count, 6u);
  EXPECT_DOUBLE_EQ(snapshot.sum, 1103.5);
  EXPECT_EQ(registry.Render(),
            "# HELP app_size_bytes Sizes.\n"
            "# TYPE app_size_bytes histogram\n"
            "app_size_bytes_bucket{le=\"1\"} 2\n"
            "app_size_bytes_bucket{le=\"10\"} 3\n"
            "app_size_bytes_bucket{le=\"100\"} 5\n"
            "app_size_bytes_bucket{le=\"+Inf\"} 6\n"
            "app_size_bytes_sum 1103.5\n"
            "app_size_bytes_count 6\n");
}

TEST(MetricsTest, EmptyHistogramRendersZeroBuckets) {
  Registry registry;
  registry.AddHistogram("app_wait_seconds", "Waits.", {"phase"}, {0.0005}).WithLabels({"x"});
  EXPECT_THAT(registry.Render(), HasSubstr("app_wait_seconds_bucket{phase=\"x\",le=\"0.0005\"} 0\n"
                                           "app_wait_seconds_bucket{phase=\"x\",le=\"+Inf\"} 0\n"
                                           "app_wait_seconds_sum{phase=\"x\"} 0\n"
                                           "app_wait_seconds_count{phase=\"x\"} 0\n"));
}

TEST(MetricsTest, FormatsValuesAsTheTextFormatReadsThem) {
  struct Case {
    double value;
    const char* text;
  };
  const std::vector<Case> cases = {
      {0, "0"},
      {42, "42"},
      {-7, "-7"},
      {1e12, "1000000000000"},
      {0.0005, "0.0005"},
      {0.1, "0.1"},
      {2.5, "2.5"},
      {1e-7, "1e-07"},
      {1e20, "1e+20"},
      {std::numeric_limits<double>::infinity(), "+Inf"},
      {-std::numeric_limits<double>::infinity(), "-Inf"},
      {std::numeric_limits<double>::quiet_NaN(), "NaN"},
  };
  for (const Case& c : cases) EXPECT_EQ(FormatValue(c.value), c.text) << c.value;
}

TEST(MetricsTest, WithLabelsReturnsTheSameMetric) {
  Registry registry;
  CounterFamily& family = registry.AddCounter("app_total", "Total.", {"a"});
  EXPECT_EQ(&family.WithLabels({"x"}), &family.WithLabels({"x"}));
  EXPECT_NE(&family.WithLabels({"x"}), &family.WithLabels({"y"}));
}

TEST(MetricsTest, GaugeAddsAndSets) {
  Gauge gauge;
  gauge.Add(2);
  gauge.Add(-0.5);
  EXPECT_DOUBLE_EQ(gauge.value(), 1.5);
  gauge.Set(10);
  EXPECT_DOUBLE_EQ(gauge.value(), 10);
}

TEST(MetricsTest, ConcurrentUpdatesAreAllCounted) {
  Registry registry;
  CounterFamily& counters = registry.AddCounter("app_total", "Total.", {"thread"});
  HistogramFamily& histograms = registry.AddHistogram("app_seconds", "Seconds.", {}, {1});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 10000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        counters.WithLabels({"shared"}).Increment();
        histograms.WithLabels({}).Observe(0.5);
        if (i % 1000 == 0) registry.Render();  // rendering while others write
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(counters.WithLabels({"shared"}).value(), kThreads * kPerThread);
  EXPECT_EQ(histograms.WithLabels({}).Read().count, uint64_t{kThreads * kPerThread});
}

TEST(MetricsDeathTest, ProgrammerErrorsAbortWithTheReason) {
  EXPECT_DEATH(Registry().AddCounter("bad-name", "x"), "bad metric name \"bad-name\"");
  EXPECT_DEATH(Registry().AddGauge("ok", "x", {"__reserved"}), "bad label name \"__reserved\"");
  EXPECT_DEATH(Registry().AddHistogram("ok", "x", {"le"}, {1}), "bad label name \"le\"");
  EXPECT_DEATH(Registry().AddHistogram("ok", "x", {}, {2, 1}), "strictly increasing");
  EXPECT_DEATH(
      {
        Registry registry;
        registry.AddGauge("twice", "x");
        registry.AddGauge("twice", "x");
      },
      "metric twice added twice");
  EXPECT_DEATH(Registry().AddCounter("ok", "x", {"a"}).WithLabels({}),
               "has 1 labels, got 0 values");
  EXPECT_DEATH(Counter().Increment(-1), "counter decremented");
}

}  // namespace
}  // namespace splitd::metrics
