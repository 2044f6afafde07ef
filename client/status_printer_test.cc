#include "client/status_printer.h"

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
    member->set_state(i == 2 ? v1::MEMBER_STATE_SPARE : v1::MEMBER_STATE_ACTIVE);
    member->set_phase(i == 1 ? v1::PHASE_FAILED : v1::PHASE_READY);
  }
  status.mutable_members(1)->set_state(v1::MEMBER_STATE_LOST);
  status.mutable_members(1)->set_reason("lease expired");
  status.mutable_members(0)->mutable_last_seen()->set_seconds(1714557600);  // 2024-05-01 10:00
  v1::GroupKindStatus* tp = status.add_groups();
  tp->set_kind("tp");
  tp->set_groups(1);
  tp->set_failed(1);
  tp->set_max_latency_us(12.34);
  v1::GroupValidation* validation = tp->add_validations();
  validation->set_phase(v1::PHASE_FAILED);
  validation->set_latency_us(12.34);
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
            "  RANK  MEMBER  NODE     POD        STATE   PHASE   REASON\n"
            "  0     m-0     node-a   pod-0      ACTIVE  READY\n"
            "  1     m-1     node-bb  pod-1      LOST    FAILED  lease expired\n"
            "  -     m-2     node-bb  pod-spare  SPARE   READY\n"
            "\n"
            "Group kinds:\n"
            "  KIND  GROUPS  READY  FAILED  MAX_LATENCY_US\n"
            "  tp    1       0      1       12.3\n"
            "  dp    2       0      0       -\n");
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
                                "registered_members", "members", "groups"));
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

}  // namespace
}  // namespace splitd::cli
