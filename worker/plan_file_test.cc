#include "worker/plan_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/temp_files.h"

namespace splitd::worker {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

PlanFile Rank5() {
  PlanFile file;
  file.cluster = "llama";
  file.rank = 5;
  file.world_size = 8;
  file.epoch = 3;
  file.fingerprint = "72d50201ee3cee7f2f3ee636f0c49a13be73a72ab4d7718cedc2f09e7ff5673e";
  file.method = "split";
  file.state = "READY";
  file.groups.push_back({"tp", {4, 5}, 1, 2, "cpu:gloo,cuda:nccl"});
  file.groups.push_back({"pp", {5, 7}, 0, 3, "cpu:gloo"});
  file.bootstrap_ms = 12.5;
  file.split_ms = 3.25;
  file.validate_ms = 0.5;
  file.groups_ready_ms = 16.25;
  return file;
}

TEST(PlanFileTest, WrittenFileRoundTripsThroughJson) {
  const std::string dir = testing::MakeTempDir("plan_file");
  const std::string path = dir + "/plan.json";
  ASSERT_THAT(Rank5().Write(path), IsOk());

  const nlohmann::json doc = nlohmann::json::parse(testing::ReadFileBytes(path));
  EXPECT_EQ(doc["cluster"], "llama");
  EXPECT_EQ(doc["rank"], 5);
  EXPECT_EQ(doc["world_size"], 8);
  EXPECT_EQ(doc["epoch"], 3);
  EXPECT_EQ(doc["fingerprint"], Rank5().fingerprint);
  EXPECT_EQ(doc["method"], "split");
  EXPECT_EQ(doc["state"], "READY");
  EXPECT_FALSE(doc.contains("error"));
  ASSERT_EQ(doc["groups"].size(), 2u);
  EXPECT_THAT(doc["groups"]["tp"]["ranks"].get<std::vector<int>>(), ElementsAre(4, 5));
  EXPECT_EQ(doc["groups"]["tp"]["local_rank"], 1);
  EXPECT_EQ(doc["groups"]["tp"]["group_index"], 2);
  EXPECT_EQ(doc["groups"]["tp"]["backend"], "cpu:gloo,cuda:nccl");
  EXPECT_THAT(doc["groups"]["pp"]["ranks"].get<std::vector<int>>(), ElementsAre(5, 7));
  EXPECT_EQ(doc["timings"]["bootstrap_ms"], 12.5);
  EXPECT_EQ(doc["timings"]["split_ms"], 3.25);
  EXPECT_EQ(doc["timings"]["validate_ms"], 0.5);
  EXPECT_EQ(doc["timings"]["groups_ready_ms"], 16.25);

  struct stat info;
  ASSERT_EQ(stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0644u);
}

TEST(PlanFileTest, FailedStateCarriesTheErrorAndNoGroups) {
  PlanFile file = Rank5();
  file.state = "FAILED";
  file.error = "rank 5: plan fingerprint mismatch";
  file.groups.clear();
  const nlohmann::json doc = nlohmann::json::parse(file.ToJson());
  EXPECT_EQ(doc["state"], "FAILED");
  EXPECT_EQ(doc["error"], "rank 5: plan fingerprint mismatch");
  EXPECT_TRUE(doc["groups"].is_object());
  EXPECT_TRUE(doc["groups"].empty());
}

TEST(PlanFileTest, ReplacingLeavesOnlyTheNewFile) {
  const std::string dir = testing::MakeTempDir("plan_file");
  const std::string path = dir + "/plan.json";
  ASSERT_THAT(Rank5().Write(path), IsOk());
  PlanFile next = Rank5();
  next.epoch = 4;
  ASSERT_THAT(next.Write(path), IsOk());
  EXPECT_THAT(testing::ListDir(dir), ElementsAre("plan.json"));
  EXPECT_EQ(nlohmann::json::parse(testing::ReadFileBytes(path))["epoch"], 4);
}

TEST(PlanFileTest, InvalidUtf8IsReplacedNotThrown) {
  PlanFile file = Rank5();
  file.error = std::string("bad \xff byte");
  const nlohmann::json doc = nlohmann::json::parse(file.ToJson());
  EXPECT_THAT(doc["error"].get<std::string>(), HasSubstr("bad "));
}

TEST(PlanFileTest, MissingDirectoryIsAnErrorNamingThePath) {
  const std::string path = testing::MakeTempDir("plan_file") + "/missing/plan.json";
  EXPECT_THAT(Rank5().Write(path), StatusIs(absl::StatusCode::kNotFound, HasSubstr("plan.json")));
}

}  // namespace
}  // namespace splitd::worker
