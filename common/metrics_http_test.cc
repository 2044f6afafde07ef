#include "common/metrics_http.h"

#include <memory>
#include <string>

#include "common/metrics.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"

namespace splitd::metrics {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::HasSubstr;

TEST(MetricsHttpServerTest, ServesTheRegistryOnMetricsOnly) {
  Registry registry;
  registry.AddCounter("app_scrapes_total", "Scrapes.").WithLabels({}).Increment(3);
  auto server = MetricsHttpServer::Start("127.0.0.1", 0, &registry);
  ASSERT_THAT(server, IsOk());
  ASSERT_GT((*server)->port(), 0);

  httplib::Client client("127.0.0.1", (*server)->port());
  httplib::Result metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics) << httplib::to_string(metrics.error());
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(metrics->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(metrics->body, registry.Render());
  EXPECT_THAT(metrics->body, HasSubstr("app_scrapes_total 3\n"));

  for (const char* path : {"/", "/metrics/x", "/debug"}) {
    httplib::Result other = client.Get(path);
    ASSERT_TRUE(other) << path;
    EXPECT_EQ(other->status, 404) << path;
  }
  httplib::Result post = client.Post("/metrics", "", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 404);

  (*server)->Shutdown();
  (*server)->Shutdown();  // idempotent
  httplib::Client after("127.0.0.1", (*server)->port());
  EXPECT_FALSE(after.Get("/metrics"));
}

TEST(MetricsHttpServerTest, RefusesAPortInUse) {
  Registry registry;
  auto first = MetricsHttpServer::Start("127.0.0.1", 0, &registry);
  ASSERT_THAT(first, IsOk());
  EXPECT_THAT(MetricsHttpServer::Start("127.0.0.1", (*first)->port(), &registry),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("for metrics")));
}

TEST(MetricsHttpServerTest, RefusesAnUnknownHost) {
  Registry registry;
  EXPECT_THAT(MetricsHttpServer::Start("no-such-host.invalid", 0, &registry),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no-such-host.invalid")));
}

}  // namespace
}  // namespace splitd::metrics
