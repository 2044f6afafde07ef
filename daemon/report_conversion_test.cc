#include "daemon/report_conversion.h"

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace splitd::daemon {
namespace {

// Every field of the request, with two group entries.
constexpr char kRequest[] = R"pb(
  member { cluster: "demo" member_id: "m-3" session_token: "token-3" }
  epoch: 4
  rank: 2
  fingerprint: "ab12"
  phase: PHASE_FAILED
  groups {
    kind: "tp"
    phase: PHASE_READY
    allreduce_value: 2
    latency_us: 120
    bus_bandwidth_gbps: 9.5
    backend: "cpu:gloo"
  }
  groups { kind: "dp" phase: PHASE_FAILED error: "connection reset" backend: "cuda:nccl" }
  error: "dp failed"
  timings {
    bootstrap_ms: 1
    split_ms: 2
    validate_ms: 3
    groups_ready_ms: 6
    plan_received_unix_ms: 1000
    world_connected_unix_ms: 1001
    groups_ready_unix_ms: 1006
  }
  layer: REPORT_LAYER_WORKLOAD
  detail: "creating dp"
)pb";

v1::ReportGroupStatusRequest Parse(const char* text) {
  v1::ReportGroupStatusRequest request;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &request));
  return request;
}

TEST(ReportConversionTest, ARequestBecomesTheCoresReportFieldByField) {
  const core::RankReport report = ToRankReport(Parse(kRequest));
  EXPECT_EQ(report.member_id, "m-3");
  EXPECT_EQ(report.session_token, "token-3");
  EXPECT_EQ(report.epoch, 4);
  EXPECT_EQ(report.rank, 2);
  EXPECT_EQ(report.fingerprint, "ab12");
  EXPECT_EQ(report.phase, v1::PHASE_FAILED);
  EXPECT_EQ(report.layer, v1::REPORT_LAYER_WORKLOAD);
  EXPECT_EQ(report.error, "dp failed");
  EXPECT_EQ(report.detail, "creating dp");
  ASSERT_EQ(report.groups.size(), 2u);
  EXPECT_EQ(report.groups[0].kind, "tp");
  EXPECT_EQ(report.groups[0].backend, "cpu:gloo");
  EXPECT_EQ(report.groups[0].phase, v1::PHASE_READY);
  EXPECT_EQ(report.groups[0].allreduce_value, 2);
  EXPECT_EQ(report.groups[0].latency_us, 120);
  EXPECT_EQ(report.groups[0].bus_bandwidth_gbps, 9.5);
  EXPECT_EQ(report.groups[1].error, "connection reset");
  EXPECT_EQ(report.timings.bootstrap_ms, 1);
  EXPECT_EQ(report.timings.split_ms, 2);
  EXPECT_EQ(report.timings.validate_ms, 3);
  EXPECT_EQ(report.timings.groups_ready_ms, 6);
  EXPECT_EQ(report.timings.plan_received_unix_ms, 1000);
  EXPECT_EQ(report.timings.world_connected_unix_ms, 1001);
  EXPECT_EQ(report.timings.groups_ready_unix_ms, 1006);
}

TEST(ReportConversionTest, ARequestSurvivesTheRoundTripThroughTheCore) {
  const v1::ReportGroupStatusRequest request = Parse(kRequest);
  const v1::ReportGroupStatusRequest back = ToReportRequest("demo", ToRankReport(request));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(back, request))
      << back.DebugString();
}

TEST(ReportConversionTest, UnknownEnumValuesAreKeptForTheCoreToRefuse) {
  v1::ReportGroupStatusRequest request = Parse(kRequest);
  request.set_layer(static_cast<v1::ReportLayer>(7));
  request.set_phase(static_cast<v1::Phase>(42));
  const core::RankReport report = ToRankReport(request);
  EXPECT_EQ(static_cast<int>(report.layer), 7);
  EXPECT_EQ(static_cast<int>(report.phase), 42);
}

TEST(ReportConversionTest, TheDaemonsOwnReportIsStoredUnderItsClusterWithoutAToken) {
  core::RankReport stall;
  stall.member_id = "m-1";
  stall.epoch = 2;
  stall.rank = 1;
  stall.fingerprint = "ab12";
  stall.phase = v1::PHASE_FAILED;
  stall.error = "rank 1 (pod p, node n) stuck in agent SPLITTING";
  stall.timings.bootstrap_ms = 40;
  const v1::ReportGroupStatusRequest request = ToReportRequest("demo", stall);
  EXPECT_EQ(request.member().cluster(), "demo");
  EXPECT_EQ(request.member().member_id(), "m-1");
  EXPECT_EQ(request.member().session_token(), "");
  EXPECT_EQ(request.epoch(), 2);
  EXPECT_EQ(request.rank(), 1);
  EXPECT_EQ(request.phase(), v1::PHASE_FAILED);
  EXPECT_EQ(request.layer(), v1::REPORT_LAYER_UNSPECIFIED);
  EXPECT_EQ(request.error(), stall.error);
  EXPECT_EQ(request.groups_size(), 0);
  EXPECT_EQ(request.timings().bootstrap_ms(), 40);
}

}  // namespace
}  // namespace splitd::daemon
