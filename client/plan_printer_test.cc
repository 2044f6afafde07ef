#include "client/plan_printer.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace splitd::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kFingerprint[] = "3f2a9c0d1e2b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f708192a3b4c5d6e7f";

void AddKind(v1::Plan* plan, const std::string& name, const std::string& backend,
             std::vector<std::string> dims, const std::vector<std::vector<int64_t>>& groups) {
  v1::GroupKindPlan* kind = plan->add_groups();
  kind->set_name(name);
  kind->set_backend(backend);
  for (std::string& dim : dims) kind->add_dims(std::move(dim));
  kind->set_group_count(static_cast<int64_t>(groups.size()));
  kind->set_group_size(groups.empty() ? 0 : static_cast<int64_t>(groups[0].size()));
  for (const auto& group : groups) {
    v1::RankList* list = kind->add_split_ranks();
    for (int64_t rank : group) list->add_ranks(rank);
  }
}

// The vLLM example of docs/plan-format.md, world 8, DP2 PP2 TP2, plus an explicit kind.
v1::Plan ExamplePlan() {
  v1::Plan plan;
  plan.set_cluster("llama-serve");
  plan.set_epoch(3);
  plan.set_fingerprint(kFingerprint);
  plan.set_world_size(8);
  plan.set_method("split");
  AddKind(&plan, "tp", "cpu:gloo,cuda:nccl", {"tp"}, {{0, 1}, {2, 3}, {4, 5}, {6, 7}});
  AddKind(&plan, "pp", "cpu:gloo", {"pp"}, {{0, 2}, {1, 3}, {4, 6}, {5, 7}});
  AddKind(&plan, "ep", "cpu:gloo", {"tp", "dp"}, {{0, 1, 4, 5}, {2, 3, 6, 7}});
  AddKind(&plan, "custom", "cpu:gloo", {}, {{0, 3}, {1, 2}, {4, 7}, {5, 6}});
  return plan;
}

TEST(PlanPrinterTest, JsonHasExactlyTheDocumentedShape) {
  const std::string text = PlanPrinter::Json(ExamplePlan());
  nlohmann::ordered_json json = nlohmann::ordered_json::parse(text);  // one object, nothing else
  ASSERT_TRUE(json.is_object());
  std::vector<std::string> keys;
  for (const auto& item : json.items()) keys.push_back(item.key());
  EXPECT_THAT(keys, ElementsAre("cluster", "epoch", "fingerprint", "groups"));
  EXPECT_EQ(json["cluster"], "llama-serve");
  ASSERT_TRUE(json["epoch"].is_number_integer());
  EXPECT_EQ(json["epoch"], 3);
  EXPECT_EQ(json["fingerprint"], kFingerprint);

  std::vector<std::string> kinds;
  for (const auto& item : json["groups"].items()) kinds.push_back(item.key());
  EXPECT_THAT(kinds, ElementsAre("tp", "pp", "ep", "custom"));  // plan order
  EXPECT_EQ(json["groups"]["tp"], nlohmann::ordered_json::parse("[[0,1],[2,3],[4,5],[6,7]]"));
  EXPECT_EQ(json["groups"]["pp"], nlohmann::ordered_json::parse("[[0,2],[1,3],[4,6],[5,7]]"));
  EXPECT_EQ(json["groups"]["ep"], nlohmann::ordered_json::parse("[[0,1,4,5],[2,3,6,7]]"));
  EXPECT_EQ(json["groups"]["custom"], nlohmann::ordered_json::parse("[[0,3],[1,2],[4,7],[5,6]]"));
}

TEST(PlanPrinterTest, JsonEscapesNamesAndHandlesNoGroups) {
  v1::Plan plan;
  plan.set_cluster("we\"ird\n");
  nlohmann::ordered_json json = nlohmann::ordered_json::parse(PlanPrinter::Json(plan));
  EXPECT_EQ(json["cluster"], "we\"ird\n");
  EXPECT_EQ(json["epoch"], 0);
  EXPECT_TRUE(json["groups"].is_object());
  EXPECT_TRUE(json["groups"].empty());
}

TEST(PlanPrinterTest, YamlIsTheSameObject) {
  YAML::Node yaml = YAML::Load(PlanPrinter::Yaml(ExamplePlan()));
  EXPECT_EQ(yaml["cluster"].as<std::string>(), "llama-serve");
  EXPECT_EQ(yaml["epoch"].as<int64_t>(), 3);
  EXPECT_EQ(yaml["fingerprint"].as<std::string>(), kFingerprint);
  ASSERT_TRUE(yaml["groups"].IsMap());
  EXPECT_EQ(yaml["groups"].size(), 4u);
  EXPECT_EQ(yaml["groups"]["ep"][1].as<std::vector<int64_t>>(), (std::vector<int64_t>{2, 3, 6, 7}));
  EXPECT_EQ(yaml["groups"]["custom"][0].as<std::vector<int64_t>>(), (std::vector<int64_t>{0, 3}));
}

TEST(PlanPrinterTest, TableShowsEachKindWithItsGroups) {
  EXPECT_EQ(PlanPrinter::Table(ExamplePlan(), std::nullopt),
            "cluster llama-serve  epoch 3  world 8  method split  fingerprint 3f2a9c0d1e2b\n"
            "\n"
            "KIND tp  backend cpu:gloo,cuda:nccl  groups 4 x 2  dims tp\n"
            "  [0, 1]  [2, 3]  [4, 5]  [6, 7]\n"
            "\n"
            "KIND pp  backend cpu:gloo  groups 4 x 2  dims pp\n"
            "  [0, 2]  [1, 3]  [4, 6]  [5, 7]\n"
            "\n"
            "KIND ep  backend cpu:gloo  groups 2 x 4  dims tp,dp\n"
            "  [0, 1, 4, 5]  [2, 3, 6, 7]\n"
            "\n"
            "KIND custom  backend cpu:gloo  groups 4 x 2  explicit\n"
            "  [0, 3]  [1, 2]  [4, 7]  [5, 6]\n");
}

TEST(PlanPrinterTest, TableWrapsGroupsInAlignedColumns) {
  v1::Plan plan = ExamplePlan();
  plan.clear_groups();
  std::vector<std::vector<int64_t>> groups;
  for (int64_t i = 0; i < 16; ++i) groups.push_back({2 * i, 2 * i + 1});
  AddKind(&plan, "tp", "cpu:gloo", {"tp"}, groups);
  const std::string table = PlanPrinter::Table(plan, std::nullopt, /*width=*/40);
  // "[30, 31]" is 8 wide: (40 - 2 + 2) / (8 + 2) = 4 groups per line, padded to 8.
  EXPECT_THAT(table, HasSubstr("\n  [0, 1]    [2, 3]    [4, 5]    [6, 7]\n"
                               "  [8, 9]    [10, 11]  [12, 13]  [14, 15]\n"));
  EXPECT_THAT(table, HasSubstr("\n  [24, 25]  [26, 27]  [28, 29]  [30, 31]\n"));
  EXPECT_EQ(table.find(" \n"), std::string::npos);  // no trailing spaces
}

TEST(PlanPrinterTest, TableSaysWhenTheRankTakesNoPart) {
  v1::Plan plan = ExamplePlan();
  plan.mutable_groups(3)->clear_split_ranks();
  const std::string table = PlanPrinter::Table(plan, 6);
  EXPECT_THAT(table, HasSubstr("fingerprint 3f2a9c0d1e2b  rank 6\n"));
  EXPECT_THAT(table, HasSubstr("KIND custom  backend cpu:gloo  groups 4 x 2  explicit\n"
                               "  (rank 6 takes no part)\n"));
}

}  // namespace
}  // namespace splitd::cli
