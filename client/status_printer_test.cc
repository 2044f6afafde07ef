#include "client/status_printer.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace splitd::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::ClusterStatus ExampleStatus() {
  v1::ClusterStatus status;
  status.set_cluster("llama-serve");
  status.set_epoch(2);
  status.set_state(v1::PHASE_DEGRADED);
  status.set_fingerprint("ab12");
  status.set_reason("member m-1 lost");
  status.set_world_size(2);
  status.set_registered_members(3);
  const char* pods[] = {"pod-0", "pod-1", "pod-spare"};
  for (int i = 0; i < 3; ++i) {
    v1::MemberStatus* member = status.add_members();
    member->set_member_id(absl::StrCat("m-", i));
    member->set_rank(i < 2 ? i : -1);
    member->set_pod(pods[i]);
    member->set_node(i == 0 ? "node-a" : "node-bb");
    member->set_host(absl::StrCat("10.0.0.", i + 1));
    member->set_local_index(i == 2 ? 1 : 0);
    member->set_state(i == 2 ? v1::MEMBER_STATE_SPARE : v1::MEMBER_STATE_ACTIVE);
    member->set_phase(i == 1 ? v1::PHASE_FAILED : v1::PHASE_READY);
  }
  status.mutable_members(1)->set_state(v1::MEMBER_STATE_LOST);
  status.mutable_members(1)->set_reason("lease expired");
  status.mutable_members(0)->mutable_last_seen()->set_seconds(1714557600);  // 2024-05-01 10:00
  v1::PhaseTimings* timings = status.mutable_members(0)->mutable_timings();
  timings->set_bootstrap_ms(120.5);
  timings->set_split_ms(40);
  timings->set_validate_ms(2.25);
  timings->set_groups_ready_ms(162.75);
  status.mutable_members(0)->add_backends("cpu:gloo");
  v1::GroupKindStatus* tp = status.add_groups();
  tp->set_kind("tp");
  tp->set_groups(1);
  tp->set_failed(1);
  tp->set_max_latency_us(12.34);
  for (double latency : {12.34, 8.0, 9.5}) {
    v1::GroupValidation* validation = tp->add_validations();
    validation->set_group_index(tp->validations_size() - 1);
    validation->set_phase(latency > 10 ? v1::PHASE_FAILED : v1::PHASE_READY);
    validation->set_allreduce_value(2);
    validation->set_latency_us(latency);
  }
  v1::GroupKindStatus* dp = status.add_groups();
  dp->set_kind("dp");
  dp->set_groups(2);
  return status;
}

TEST(StatusPrinterTest, NamesPhasesWithoutPrefix) {
  EXPECT_EQ(StatusPrinter::PhaseName(v1::PHASE_READY), "READY");
  EXPECT_EQ(StatusPrinter::PhaseName(v1::PHASE_BOOTSTRAPPING), "BOOTSTRAPPING");
  EXPECT_EQ(StatusPrinter::PhaseName(static_cast<v1::Phase>(42)), "42");
  EXPECT_EQ(StatusPrinter::MemberStateName(v1::MEMBER_STATE_SPARE), "SPARE");
}

TEST(StatusPrinterTest, TableShowsSummaryMembersAndGroupKinds) {
  EXPECT_EQ(StatusPrinter::Table(ExampleStatus()),
            "Cluster:      llama-serve\n"
            "Epoch:        2\n"
            "State:        DEGRADED\n"
            "Fingerprint:  ab12\n"
            "World size:   2 (3 registered)\n"
            "Reason:       member m-1 lost\n"
            "\n"
            "Members:\n"
            "  RANK  MEMBER  POD        NODE     HOST      STATE   PHASE   READY_MS  REASON\n"
            "  0     m-0     pod-0      node-a   10.0.0.1  ACTIVE  READY   162.8\n"
            "  1     m-1     pod-1      node-bb  10.0.0.2  LOST    FAILED  -         lease expired\n"
            "  -     m-2     pod-spare  node-bb  10.0.0.3  SPARE   READY   -\n"
            "\n"
            "Group kinds:\n"
            "  KIND  GROUPS  READY  FAILED  MAX_LATENCY_US  MEDIAN_LATENCY_US\n"
            "  tp    1       0      1       12.3            9.5\n"
            "  dp    2       0      0       -               -\n");
}

TEST(StatusPrinterTest, TableWithoutMembers) {
  v1::ClusterStatus status;
  status.set_cluster("c");
  status.set_state(v1::PHASE_PENDING);
  const std::string table = StatusPrinter::Table(status);
  EXPECT_THAT(table, HasSubstr("State:        PENDING\n"));
  EXPECT_THAT(table, HasSubstr("Members:\n  (none registered)\n"));
  EXPECT_THAT(table, HasSubstr("Group kinds:\n  (none)\n"));
  EXPECT_THAT(table, ::testing::Not(HasSubstr("Reason:")));
}

TEST(StatusPrinterTest, JsonHasEveryKey) {
  nlohmann::ordered_json json = StatusPrinter::ToJson(ExampleStatus());
  std::vector<std::string> keys;
  for (const auto& item : json.items()) keys.push_back(item.key());
  EXPECT_THAT(keys, ElementsAre("cluster", "epoch", "state", "fingerprint", "reason", "world_size",
                                "registered_members", "lost_members", "excluded_members",
                                "epoch_reason", "timings", "members", "groups"));
  EXPECT_EQ(json["state"], "DEGRADED");
  ASSERT_EQ(json["members"].size(), 3u);
  EXPECT_EQ(json["members"][0]["rank"], 0);
  EXPECT_EQ(json["members"][0]["last_seen"], "2024-05-01T10:00:00Z");
  EXPECT_TRUE(json["members"][1]["last_seen"].is_null());
  EXPECT_EQ(json["members"][1]["state"], "LOST");
  EXPECT_EQ(json["members"][2]["rank"], -1);
  EXPECT_EQ(json["groups"]["tp"]["failed"], 1);
  EXPECT_EQ(json["groups"]["tp"]["max_latency_us"], 12.34);
  EXPECT_EQ(json["groups"]["tp"]["validations"][0]["phase"], "FAILED");
  EXPECT_TRUE(json["groups"]["dp"]["validations"].empty());
}

TEST(StatusPrinterTest, JsonMembersCarryIdentityStateAndTimings) {
  // Through text, as a script reading `-o json` sees it.
  const nlohmann::json json =
      nlohmann::json::parse(StatusPrinter::ToJson(ExampleStatus()).dump());
  ASSERT_TRUE(json["members"].is_array());
  ASSERT_EQ(json["members"].size(), 3u);
  const nlohmann::json& first = json["members"][0];
  EXPECT_EQ(first["rank"], 0);
  EXPECT_EQ(first["member_id"], "m-0");
  EXPECT_EQ(first["pod"], "pod-0");
  EXPECT_EQ(first["node"], "node-a");
  EXPECT_EQ(first["host"], "10.0.0.1");
  EXPECT_EQ(first["local_index"], 0);
  EXPECT_EQ(first["state"], "ACTIVE");
  EXPECT_EQ(first["phase"], "READY");
  EXPECT_EQ(first["reason"], "");
  EXPECT_EQ(first["timings"], nlohmann::json::parse(R"({"bootstrap_ms": 120.5, "split_ms": 40.0,
      "validate_ms": 2.25, "groups_ready_ms": 162.75, "plan_received_unix_ms": 0.0,
      "world_connected_unix_ms": 0.0, "groups_ready_unix_ms": 0.0})"));
  EXPECT_EQ(first["backends"], nlohmann::json::parse(R"(["cpu:gloo"])"));
  const nlohmann::json& lost = json["members"][1];
  EXPECT_EQ(lost["state"], "LOST");
  EXPECT_EQ(lost["phase"], "FAILED");
  EXPECT_EQ(lost["reason"], "lease expired");
  EXPECT_EQ(lost["timings"]["groups_ready_ms"], 0.0);
  const nlohmann::json& spare = json["members"][2];
  EXPECT_EQ(spare["rank"], -1);
  EXPECT_EQ(spare["state"], "SPARE");
  EXPECT_EQ(spare["local_index"], 1);
}

TEST(StatusPrinterTest, JsonGroupsByKind) {
  const nlohmann::json json =
      nlohmann::json::parse(StatusPrinter::ToJson(ExampleStatus()).dump());
  ASSERT_TRUE(json["groups"].is_object());
  ASSERT_EQ(json["groups"].size(), 2u);
  const nlohmann::json& tp = json["groups"]["tp"];
  EXPECT_EQ(tp["groups"], 1);
  EXPECT_EQ(tp["ready"], 0);
  EXPECT_EQ(tp["failed"], 1);
  EXPECT_EQ(tp["max_latency_us"], 12.34);
  EXPECT_EQ(tp["median_latency_us"], 9.5);
  ASSERT_EQ(tp["validations"].size(), 3u);
  EXPECT_EQ(tp["validations"][1], nlohmann::json::parse(R"({"group_index": 1, "phase": "READY",
      "allreduce_value": 2.0, "latency_us": 8.0, "bus_bandwidth_gbps": 0.0})"));
  const nlohmann::json& dp = json["groups"]["dp"];
  EXPECT_EQ(dp["groups"], 2);
  EXPECT_TRUE(dp["median_latency_us"].is_null());
  EXPECT_TRUE(dp["validations"].is_array());
}

TEST(StatusPrinterTest, MedianLatency) {
  v1::GroupKindStatus kind;
  EXPECT_EQ(StatusPrinter::MedianLatencyUs(kind), std::nullopt);
  kind.add_validations()->set_latency_us(30);
  EXPECT_EQ(StatusPrinter::MedianLatencyUs(kind), 30.0);
  kind.add_validations()->set_latency_us(10);
  EXPECT_EQ(StatusPrinter::MedianLatencyUs(kind), 20.0);
  kind.add_validations()->set_latency_us(15);
  kind.add_validations()->set_latency_us(100);
  EXPECT_EQ(StatusPrinter::MedianLatencyUs(kind), 22.5);
}

TEST(StatusPrinterTest, TableShowsReadyTimeAndSpares) {
  v1::ClusterStatus status;
  status.set_cluster("c");
  status.set_state(v1::PHASE_READY);
  v1::MemberStatus* spare = status.add_members();
  spare->set_rank(-1);
  spare->set_member_id("m-9");
  spare->set_state(v1::MEMBER_STATE_SPARE);
  spare->set_phase(v1::PHASE_PENDING);
  const std::string table = StatusPrinter::Table(status);
  EXPECT_THAT(table, HasSubstr("  -     m-9"));
  EXPECT_THAT(table, HasSubstr("SPARE  PENDING  -\n"));
}

}  // namespace
}  // namespace splitd::cli
