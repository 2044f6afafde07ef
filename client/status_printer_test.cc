#include "client/status_printer.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace splitd::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kTen = 1714557600;  // 2024-05-01T10:00:00Z

v1::ClusterStatus Parse(const std::string& text) {
  v1::ClusterStatus status;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &status)) << text;
  return status;
}

std::vector<std::string> Keys(const nlohmann::ordered_json& object) {
  std::vector<std::string> keys;
  for (const auto& item : object.items()) keys.push_back(item.key());
  return keys;
}

v1::ClusterStatus ExampleStatus() {
  v1::ClusterStatus status;
  status.set_cluster("llama-serve");
  status.set_epoch(2);
  status.set_state(v1::PHASE_DEGRADED);
  status.set_fingerprint("ab12");
  status.set_reason("member m-1 lost");
  status.set_world_size(2);
  status.set_registered_members(3);
  status.set_readiness("agent");
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
  status.mutable_members(0)->mutable_phase_since()->set_seconds(kTen);
  status.mutable_members(0)->mutable_workload()->set_phase(v1::PHASE_READY);
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
  EXPECT_EQ(
      StatusPrinter::Table(ExampleStatus(), absl::FromUnixSeconds(kTen + 12)),
      "Cluster:      llama-serve\n"
      "Epoch:        2\n"
      "State:        DEGRADED\n"
      "Fingerprint:  ab12\n"
      "World size:   2 (3 registered)\n"
      "Reason:       member m-1 lost\n"
      "Readiness:    agent\n"
      "\n"
      "Members:\n"
      "  RANK  MEMBER  POD        NODE     HOST      STATE   PHASE   IN_PHASE  WORKLOAD  READY_MS"
      "  REASON\n"
      "  0     m-0     pod-0      node-a   10.0.0.1  ACTIVE  READY   12.0s     READY     162.8\n"
      "  1     m-1     pod-1      node-bb  10.0.0.2  LOST    FAILED  -         -         -"
      "         lease expired\n"
      "  -     m-2     pod-spare  node-bb  10.0.0.3  SPARE   READY   -         -         -\n"
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
  const std::string table = StatusPrinter::Table(status, absl::FromUnixSeconds(kTen));
  EXPECT_THAT(table, HasSubstr("State:        PENDING\n"));
  EXPECT_THAT(table, HasSubstr("Members:\n  (none registered)\n"));
  EXPECT_THAT(table, HasSubstr("Group kinds:\n  (none)\n"));
  EXPECT_THAT(table, Not(HasSubstr("Reason:")));
  // Neither told by an older daemon: not guessed.
  EXPECT_THAT(table, Not(HasSubstr("Readiness:")));
  EXPECT_THAT(table, Not(HasSubstr("Workload:")));
  EXPECT_THAT(table, Not(HasSubstr("waiting for")));
}

TEST(StatusPrinterTest, WaitingLineForTheAgentLayer) {
  v1::WaitingRank waiting;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(R"pb(
                                                              rank: 5
                                                              member_id: "m-5"
                                                              pod: "p"
                                                              node: "n"
                                                              layer: "agent"
                                                              phase: PHASE_PLANNED
                                                              seconds: 12
                                                              last_heartbeat_seconds: 11.8
                                                              state: MEMBER_STATE_ACTIVE
                                                            )pb",
                                                            &waiting));
  EXPECT_EQ(StatusPrinter::WaitingLine(waiting),
            "waiting for rank 5 (pod p, node n): PLANNED for 12.0 s, last heartbeat 11.8 s ago");
  waiting.set_detail("keys w/store/rank_3");
  EXPECT_EQ(StatusPrinter::WaitingLine(waiting),
            "waiting for rank 5 (pod p, node n): PLANNED (keys w/store/rank_3) for 12.0 s, last "
            "heartbeat 11.8 s ago");
}

TEST(StatusPrinterTest, WaitingLineForTheWorkloadLayer) {
  v1::WaitingRank waiting;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(R"pb(
                                                              rank: 5
                                                              member_id: "m-5"
                                                              pod: "p"
                                                              node: "n"
                                                              layer: "workload"
                                                              phase: PHASE_SPLITTING
                                                              seconds: 12
                                                              last_heartbeat_seconds: 0.4
                                                              state: MEMBER_STATE_ACTIVE
                                                              detail: "creating dp"
                                                            )pb",
                                                            &waiting));
  EXPECT_EQ(StatusPrinter::WaitingLine(waiting),
            "waiting for rank 5 (pod p, node n): workload SPLITTING (creating dp) for 12.0 s, "
            "last heartbeat 0.4 s ago");
}

TEST(StatusPrinterTest, WaitingLineSaysTheMemberIsLost) {
  v1::WaitingRank waiting;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(R"pb(
                                                              rank: 3
                                                              member_id: "m-3"
                                                              pod: "pod-3"
                                                              node: "node-b"
                                                              layer: "agent"
                                                              phase: PHASE_BOOTSTRAPPING
                                                              seconds: 40.3
                                                              last_heartbeat_seconds: 31
                                                              state: MEMBER_STATE_LOST
                                                            )pb",
                                                            &waiting));
  EXPECT_EQ(StatusPrinter::WaitingLine(waiting),
            "waiting for rank 3 (pod pod-3, node node-b): BOOTSTRAPPING for 40.3 s, last "
            "heartbeat 31.0 s ago, member LOST");
  waiting.set_detail("connecting");
  EXPECT_EQ(StatusPrinter::WaitingLine(waiting),
            "waiting for rank 3 (pod pod-3, node node-b): BOOTSTRAPPING (connecting) for 40.3 s, "
            "last heartbeat 31.0 s ago, member LOST");
}

// Ranks 0..count-1 waited for, longest first, `total` of them in all.
v1::ClusterStatus WaitingStatus(int count, int64_t total) {
  v1::ClusterStatus status = Parse(R"pb(
    cluster: "c"
    epoch: 3
    state: PHASE_SPLITTING
    readiness: "workload"
    workload_state: PHASE_SPLITTING
  )pb");
  for (int rank = 0; rank < count; ++rank) {
    v1::WaitingRank* waiting = status.add_waiting_on();
    waiting->set_rank(rank);
    waiting->set_pod(absl::StrCat("p", rank));
    waiting->set_node("n");
    waiting->set_layer("workload");
    waiting->set_phase(v1::PHASE_SPLITTING);
    waiting->set_seconds(20 - rank);
    waiting->set_last_heartbeat_seconds(0.5);
  }
  status.set_waiting_on_total(total);
  return status;
}

TEST(StatusPrinterTest, TableShowsReadinessWorkloadStateAndWaitingRanks) {
  v1::ClusterStatus status = WaitingStatus(2, 2);
  status.mutable_waiting_on(1)->set_detail("creating tp");
  status.mutable_waiting_on(1)->set_state(v1::MEMBER_STATE_LOST);
  EXPECT_THAT(StatusPrinter::Table(status, absl::FromUnixSeconds(kTen)),
              HasSubstr("State:        SPLITTING\n"
                        "Fingerprint:  \n"
                        "World size:   0 (0 registered)\n"
                        "Readiness:    workload\n"
                        "Workload:     SPLITTING\n"
                        "\n"
                        "waiting for rank 0 (pod p0, node n): workload SPLITTING for 20.0 s, "
                        "last heartbeat 0.5 s ago\n"
                        "waiting for rank 1 (pod p1, node n): workload SPLITTING (creating tp) "
                        "for 19.0 s, last heartbeat 0.5 s ago, member LOST\n"
                        "\n"
                        "Members:\n"));
}

TEST(StatusPrinterTest, TableListsFiveWaitingRanksThenHowManyMore) {
  const std::string table = StatusPrinter::Table(WaitingStatus(7, 7), absl::FromUnixSeconds(kTen));
  EXPECT_THAT(table, HasSubstr("waiting for rank 4 (pod p4, node n): workload SPLITTING for "
                               "16.0 s, last heartbeat 0.5 s ago\n"
                               "... and 2 more\n"
                               "\n"
                               "Members:\n"));
  EXPECT_THAT(table, HasSubstr("\nwaiting for rank 0 "));
  EXPECT_THAT(table, Not(HasSubstr("rank 5 ")));
  EXPECT_THAT(table, Not(HasSubstr("rank 6 ")));

  // The daemon lists at most 32 of them; the count is of all.
  EXPECT_THAT(StatusPrinter::Table(WaitingStatus(32, 1000), absl::FromUnixSeconds(kTen)),
              HasSubstr("16.0 s, last heartbeat 0.5 s ago\n... and 995 more\n"));
}

TEST(StatusPrinterTest, TableListsExactlyFiveWaitingRanksWithoutMore) {
  const std::string table = StatusPrinter::Table(WaitingStatus(5, 5), absl::FromUnixSeconds(kTen));
  EXPECT_THAT(table, HasSubstr("waiting for rank 4 (pod p4, node n): workload SPLITTING for "
                               "16.0 s, last heartbeat 0.5 s ago\n"
                               "\n"
                               "Members:\n"));
  EXPECT_THAT(table, Not(HasSubstr("more")));
}

TEST(StatusPrinterTest, TableShowsTimeInPhaseAndWorkloadPhase) {
  v1::ClusterStatus status = Parse(R"pb(
    cluster: "c"
    state: PHASE_VALIDATING
    members {
      member_id: "m-0"
      rank: 0
      state: MEMBER_STATE_ACTIVE
      phase: PHASE_READY
      phase_since { seconds: 1714557600 nanos: 200000000 }
      workload { phase: PHASE_VALIDATING }
    }
    members {
      member_id: "m-1"
      rank: 1
      state: MEMBER_STATE_ACTIVE
      phase: PHASE_VALIDATING
      phase_since { seconds: 1714557700 }
      workload { reason: "connecting" }
    }
  )pb");
  const std::string table =
      StatusPrinter::Table(status, absl::FromUnixSeconds(kTen) + absl::Milliseconds(12500));
  EXPECT_THAT(table, HasSubstr("  RANK  MEMBER  POD  NODE  HOST  STATE   PHASE       IN_PHASE"
                               "  WORKLOAD    READY_MS  REASON\n"
                               "  0     m-0                      ACTIVE  READY       12.3s"
                               "     VALIDATING  -\n"
                               // A daemon clock ahead of ours; a workload without a phase.
                               "  1     m-1                      ACTIVE  VALIDATING  0.0s"
                               "      -           -\n"));
}

TEST(StatusPrinterTest, JsonHasEveryKey) {
  nlohmann::ordered_json json = StatusPrinter::ToJson(ExampleStatus());
  EXPECT_THAT(Keys(json),
              ElementsAre("cluster", "epoch", "state", "fingerprint", "reason", "world_size",
                          "registered_members", "lost_members", "excluded_members", "held_members",
                          "epoch_reason", "readiness", "waiting_on", "waiting_on_total", "timings",
                          "members", "groups"));
  EXPECT_EQ(json["state"], "DEGRADED");
  EXPECT_EQ(json["readiness"], "agent");
  EXPECT_TRUE(json["waiting_on"].is_array());
  EXPECT_TRUE(json["waiting_on"].empty());
  EXPECT_EQ(json["waiting_on_total"], 0);
  ASSERT_EQ(json["members"].size(), 3u);
  EXPECT_THAT(Keys(json["members"][1]),
              ElementsAre("rank", "member_id", "pod", "node", "host", "local_index", "state",
                          "phase", "reason", "timings", "backends", "last_seen", "phase_since"));
  EXPECT_EQ(json["members"][0]["rank"], 0);
  EXPECT_EQ(json["members"][0]["last_seen"], "2024-05-01T10:00:00Z");
  EXPECT_EQ(json["members"][0]["phase_since"], "2024-05-01T10:00:00Z");
  EXPECT_TRUE(json["members"][1]["last_seen"].is_null());
  EXPECT_TRUE(json["members"][1]["phase_since"].is_null());
  EXPECT_EQ(json["members"][1]["state"], "LOST");
  EXPECT_EQ(json["members"][2]["rank"], -1);
  EXPECT_EQ(json["groups"]["tp"]["failed"], 1);
  EXPECT_EQ(json["groups"]["tp"]["max_latency_us"], 12.34);
  EXPECT_EQ(json["groups"]["tp"]["validations"][0]["phase"], "FAILED");
  EXPECT_TRUE(json["groups"]["dp"]["validations"].empty());
}

TEST(StatusPrinterTest, JsonMembersCarryPhaseSinceWorkloadAndAwaitedKeys) {
  const v1::ClusterStatus status = Parse(R"pb(
    cluster: "c"
    state: PHASE_VALIDATING
    readiness: "workload"
    workload_state: PHASE_SPLITTING
    members {
      member_id: "m-0"
      rank: 0
      state: MEMBER_STATE_ACTIVE
      phase: PHASE_READY
      last_seen { seconds: 1714557630 }
      phase_since { seconds: 1714557600 nanos: 250000000 }
      workload {
        phase: PHASE_SPLITTING
        phase_since { seconds: 1714557605 nanos: 500000000 }
        reason: "creating dp"
        groups { kind: "tp" phase: PHASE_READY allreduce_value: 2 latency_us: 310.5 }
      }
      waiting_for_keys: "w/store/a"
      waiting_for_keys: "w/store/b"
    }
  )pb");
  // Through text, as a script reading `-o json` sees it.
  const nlohmann::json json = nlohmann::json::parse(StatusPrinter::ToJson(status).dump());
  EXPECT_EQ(json["readiness"], "workload");
  EXPECT_EQ(json["workload_state"], "SPLITTING");
  const nlohmann::json& member = json["members"][0];
  EXPECT_EQ(member["last_seen"], "2024-05-01T10:00:30Z");
  EXPECT_EQ(member["phase_since"], "2024-05-01T10:00:00.25Z");
  EXPECT_EQ(member["workload"], nlohmann::json::parse(R"({"phase": "SPLITTING",
      "phase_since": "2024-05-01T10:00:05.5Z", "reason": "creating dp",
      "groups": [{"kind": "tp", "phase": "READY", "allreduce_value": 2.0,
                  "latency_us": 310.5}]})"));
  EXPECT_EQ(member["waiting_for_keys"], nlohmann::json::parse(R"(["w/store/a", "w/store/b"])"));
}

TEST(StatusPrinterTest, JsonWorkloadBeforeItsFirstReport) {
  const v1::ClusterStatus status = Parse(R"pb(
    cluster: "c"
    members {
      member_id: "m-0"
      workload {}
    }
  )pb");
  const nlohmann::ordered_json json = StatusPrinter::ToJson(status);
  EXPECT_FALSE(json.contains("workload_state"));
  EXPECT_EQ(json["members"][0]["workload"],
            nlohmann::ordered_json::parse(R"({"phase": "UNSPECIFIED", "phase_since": null,
                "reason": "", "groups": []})"));
  EXPECT_FALSE(json["members"][0].contains("waiting_for_keys"));
}

TEST(StatusPrinterTest, JsonWaitingOnHasExactlyItsKeys) {
  const v1::ClusterStatus status = Parse(R"pb(
    cluster: "c"
    state: PHASE_BOOTSTRAPPING
    readiness: "agent"
    waiting_on_total: 40
    waiting_on {
      rank: 5
      member_id: "m-5"
      pod: "p"
      node: "n"
      layer: "agent"
      phase: PHASE_PLANNED
      seconds: 12
      last_heartbeat_seconds: 11.75
      state: MEMBER_STATE_LOST
      detail: "w/x"
    }
    waiting_on { rank: 6 layer: "workload" phase: PHASE_SPLITTING }
  )pb");
  const nlohmann::ordered_json json = StatusPrinter::ToJson(status);
  EXPECT_EQ(json["waiting_on_total"], 40);
  ASSERT_EQ(json["waiting_on"].size(), 2u);
  EXPECT_THAT(Keys(json["waiting_on"][0]),
              ElementsAre("rank", "member_id", "pod", "node", "layer", "phase", "seconds",
                          "last_heartbeat_seconds", "state", "detail"));
  EXPECT_EQ(json["waiting_on"][0],
            nlohmann::ordered_json::parse(R"({"rank": 5, "member_id": "m-5", "pod": "p",
                "node": "n", "layer": "agent", "phase": "PLANNED", "seconds": 12.0,
                "last_heartbeat_seconds": 11.75, "state": "LOST", "detail": "w/x"})"));
  EXPECT_EQ(json["waiting_on"][1]["layer"], "workload");
  EXPECT_EQ(json["waiting_on"][1]["phase"], "SPLITTING");
  EXPECT_EQ(json["waiting_on"][1]["state"], "UNSPECIFIED");
}

TEST(StatusPrinterTest, JsonMembersCarryIdentityStateAndTimings) {
  // Through text, as a script reading `-o json` sees it.
  const nlohmann::json json = nlohmann::json::parse(StatusPrinter::ToJson(ExampleStatus()).dump());
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
  const nlohmann::json json = nlohmann::json::parse(StatusPrinter::ToJson(ExampleStatus()).dump());
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
  const std::string table = StatusPrinter::Table(status, absl::FromUnixSeconds(kTen));
  EXPECT_THAT(table, HasSubstr("  -     m-9"));
  EXPECT_THAT(table, HasSubstr("SPARE  PENDING  -         -         -\n"));
}

}  // namespace
}  // namespace splitd::cli
