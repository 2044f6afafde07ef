#include "plan/plan_fingerprint.h"

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "plan/split_planner.h"
#include "splitd/v1/topology.pb.h"

namespace splitd::plan {
namespace {

using ::splitd::testing::IsOk;
using ::testing::MatchesRegex;

v1::Topology Parse(const std::string& text) {
  v1::Topology topology;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &topology)) << text;
  return topology;
}

SplitPlan BuildOrDie(const v1::Topology& topology, int64_t epoch = 1) {
  absl::StatusOr<SplitPlan> plan = SplitPlanner::Build(topology, epoch);
  EXPECT_THAT(plan, IsOk());
  return plan.ok() ? *std::move(plan) : SplitPlan{};
}

// The vLLM example of docs/plan-format.md: world 8, DP2 PP2 TP2, with an EP kind and an explicit
// kind.
constexpr char kVllm[] = R"pb(
  cluster: "llama-serve"
  dims { name: "tp" size: 2 }
  dims { name: "pcp" size: 1 }
  dims { name: "pp" size: 2 }
  dims { name: "dp" size: 2 }
  nodes { gpus_per_node: 4 }
  groups { name: "tp" dims: "tp" backend: "cpu:gloo,cuda:nccl" local: "node" }
  groups { name: "pp" dims: "pp" }
  groups { name: "dp" dims: "dp" }
  groups { name: "ep" dims: "tp" dims: "pcp" dims: "dp" }
  groups {
    name: "custom"
    split_ranks { ranks: 0 ranks: 3 }
    split_ranks { ranks: 1 ranks: 2 }
    split_ranks { ranks: 4 ranks: 7 }
    split_ranks { ranks: 5 ranks: 6 }
  }
  method: "split"
  backend: "cpu:gloo"
  validation { allreduce_elements: 1024 bandwidth_bytes: 0 }
)pb";

// The encoding of docs/plan-format.md, written the plainest way: every byte appended to one
// string. PlanFingerprint must hash exactly these bytes.
class ReferenceEncoding {
 public:
  void U32(uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void I64(int64_t v) {
    const uint64_t u = static_cast<uint64_t>(v);
    for (int i = 0; i < 8; ++i) bytes_.push_back(static_cast<char>((u >> (8 * i)) & 0xff));
  }
  void Str(const std::string& s) {
    U32(static_cast<uint32_t>(s.size()));
    bytes_ += s;
  }
  static std::string Of(const SplitPlan& plan) {
    ReferenceEncoding e;
    e.Str("splitd-plan-v1");
    e.Str(plan.cluster);
    e.I64(plan.epoch);
    e.I64(plan.world_size);
    e.Str(plan.method);
    e.I64(plan.topology.validation().allreduce_elements());
    e.I64(plan.topology.validation().bandwidth_bytes());
    e.I64(plan.topology.nodes().gpus_per_node());
    e.I64(plan.topology.nodes().count());
    e.U32(static_cast<uint32_t>(plan.kinds.size()));
    for (const GroupKind& kind : plan.kinds) {
      e.Str(kind.name);
      e.Str(kind.backend);
      e.Str(kind.mesh);
      e.Str(kind.local);
      e.U32(static_cast<uint32_t>(kind.dims.size()));
      for (const std::string& dim : kind.dims) e.Str(dim);
      e.U32(static_cast<uint32_t>(kind.group_count()));
      for (int64_t g = 0; g < kind.group_count(); ++g) {
        e.U32(static_cast<uint32_t>(kind.group(g).size()));
        for (int32_t member : kind.group(g)) e.U32(static_cast<uint32_t>(member));
      }
    }
    return e.bytes_;
  }

 private:
  std::string bytes_;
};

TEST(PlanFingerprintTest, GoldenValueForTheVllmExample) {
  const SplitPlan plan = BuildOrDie(Parse(kVllm), 1);
  // Pinned: any change of the encoding (docs/plan-format.md) must change the version tag and
  // this value together.
  EXPECT_EQ(plan.fingerprint, "72d50201ee3cee7f2f3ee636f0c49a13be73a72ab4d7718cedc2f09e7ff5673e");
  EXPECT_THAT(plan.fingerprint, MatchesRegex("[0-9a-f]{64}"));
}

TEST(PlanFingerprintTest, HashesExactlyTheDocumentedEncoding) {
  const SplitPlan small = BuildOrDie(Parse(kVllm), 3);
  EXPECT_EQ(PlanFingerprint::Compute(small), Sha256::Hex(ReferenceEncoding::Of(small)));
  // Large enough that the encoding spans many 64 KiB chunks, with strings across chunk edges.
  v1::Topology topology = Parse(R"pb(
    cluster: "big"
    dims { name: "tp" size: 8 }
    dims { name: "pp" size: 4 }
    dims { name: "dp" size: 4096 }
    groups { name: "tp" dims: "tp" }
    groups { name: "pp" dims: "pp" }
    groups { name: "dp" dims: "dp" }
    groups { name: "ep" dims: "tp" dims: "dp" }
  )pb");
  const SplitPlan large = BuildOrDie(topology, 7);
  EXPECT_EQ(large.fingerprint, Sha256::Hex(ReferenceEncoding::Of(large)));
}

TEST(PlanFingerprintTest, EqualInputGivesEqualFingerprint) {
  const SplitPlan a = BuildOrDie(Parse(kVllm));
  const SplitPlan b = BuildOrDie(Parse(kVllm));
  EXPECT_EQ(a.fingerprint, b.fingerprint);
  EXPECT_EQ(PlanFingerprint::Compute(a), a.fingerprint);
}

TEST(PlanFingerprintTest, IgnoresTheStoredFingerprint) {
  SplitPlan plan = BuildOrDie(Parse(kVllm));
  const std::string original = plan.fingerprint;
  plan.fingerprint = "something else";
  EXPECT_EQ(PlanFingerprint::Compute(plan), original);
}

TEST(PlanFingerprintTest, EquivalentSpellingsNormalizeAlikeAndHashAlike) {
  // Defaults left out, and explicit lists given in another order (their own order kept).
  v1::Topology sparse = Parse(R"pb(
    cluster: "llama-serve"
    dims { name: "tp" size: 2 }
    dims { name: "pcp" size: 1 }
    dims { name: "pp" size: 2 }
    dims { name: "dp" size: 2 }
    nodes { gpus_per_node: 4 }
    groups { name: "tp" dims: "tp" backend: "cpu:gloo,cuda:nccl" local: "node" }
    groups { name: "pp" dims: "pp" }
    groups { name: "dp" dims: "dp" backend: "cpu:gloo" }
    groups { name: "ep" dims: "tp" dims: "pcp" dims: "dp" }
    groups {
      name: "custom"
      split_ranks { ranks: 5 ranks: 6 }
      split_ranks { ranks: 1 ranks: 2 }
      split_ranks { ranks: 4 ranks: 7 }
      split_ranks { ranks: 0 ranks: 3 }
    }
    world_size: 8
  )pb");
  const SplitPlan a = BuildOrDie(Parse(kVllm));
  const SplitPlan b = BuildOrDie(sparse);
  std::string difference;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&difference);
  EXPECT_TRUE(differencer.Compare(a.topology, b.topology)) << difference;
  EXPECT_EQ(a.fingerprint, b.fingerprint);
}

TEST(PlanFingerprintTest, DefaultGroupsEqualTheirSpelledOutForm) {
  const char* dims = R"pb(cluster: "c"
                          dims { name: "tp" size: 2 }
                          dims { name: "dp" size: 4 })pb";
  const SplitPlan implicit = BuildOrDie(Parse(dims));
  const SplitPlan spelled =
      BuildOrDie(Parse(absl::StrCat(dims, R"pb(groups { name: "tp" dims: "tp" }
                                               groups { name: "dp" dims: "dp" })pb")));
  EXPECT_EQ(implicit.fingerprint, spelled.fingerprint);
}

struct Change {
  std::string name;
  std::function<void(v1::Topology*)> apply;
  int64_t epoch = 1;
};

TEST(PlanFingerprintTest, EveryChangeChangesTheFingerprint) {
  const std::string base = BuildOrDie(Parse(kVllm)).fingerprint;
  const std::vector<Change> changes = {
      {"epoch", [](v1::Topology*) {}, 2},
      {"cluster", [](v1::Topology* t) { t->set_cluster("llama-serve2"); }},
      {"dim size", [](v1::Topology* t) { t->mutable_dims(3)->set_size(4); }},
      {"dim order", [](v1::Topology* t) { t->mutable_dims()->SwapElements(2, 3); }},
      {"group backend",
       [](v1::Topology* t) { t->mutable_groups(0)->set_backend("cuda:nccl,cpu:gloo"); }},
      {"inherited backend", [](v1::Topology* t) { t->set_backend("cuda:nccl"); }},
      {"method", [](v1::Topology* t) { t->set_method("init"); }},
      {"list order",
       [](v1::Topology* t) {
         t->mutable_groups(4)->mutable_split_ranks(2)->mutable_ranks()->SwapElements(0, 1);
       }},
      {"list membership",
       [](v1::Topology* t) {
         t->mutable_groups(4)->mutable_split_ranks(3)->mutable_ranks()->RemoveLast();
       }},
      {"allreduce elements",
       [](v1::Topology* t) { t->mutable_validation()->set_allreduce_elements(1025); }},
      {"bandwidth bytes",
       [](v1::Topology* t) { t->mutable_validation()->set_bandwidth_bytes(1 << 20); }},
      {"gpus per node", [](v1::Topology* t) { t->mutable_nodes()->set_gpus_per_node(8); }},
      {"node count", [](v1::Topology* t) { t->mutable_nodes()->set_count(2); }},
      {"local", [](v1::Topology* t) { t->mutable_groups(0)->clear_local(); }},
      {"group name", [](v1::Topology* t) { t->mutable_groups(1)->set_name("pipeline"); }},
      {"generator dims order",
       [](v1::Topology* t) { t->mutable_groups(3)->mutable_dims()->SwapElements(0, 2); }},
      {"kind order", [](v1::Topology* t) { t->mutable_groups()->SwapElements(1, 2); }},
      {"extra kind",
       [](v1::Topology* t) {
         v1::GroupSpec* g = t->add_groups();
         g->set_name("pcp");
         g->add_dims("pcp");
       }},
      {"mesh",
       [](v1::Topology* t) {
         v1::Mesh* m = t->add_meshes();
         m->set_name("all");
         v1::Dim* d = m->add_dims();
         d->set_name("pp");
         d->set_size(8);
         t->mutable_groups(1)->set_mesh("all");
       }},
  };
  std::vector<std::string> seen = {base};
  for (const Change& change : changes) {
    v1::Topology topology = Parse(kVllm);
    change.apply(&topology);
    const SplitPlan plan = BuildOrDie(topology, change.epoch);
    EXPECT_NE(plan.fingerprint, base) << change.name;
    for (const std::string& other : seen) EXPECT_NE(plan.fingerprint, other) << change.name;
    seen.push_back(plan.fingerprint);
  }
}

TEST(PlanFingerprintTest, StringsAreLengthPrefixed) {
  SplitPlan plan = BuildOrDie(Parse(kVllm));
  plan.kinds[1].name = "ab";
  plan.kinds[1].backend = "c";
  const std::string split_one_way = PlanFingerprint::Compute(plan);
  plan.kinds[1].name = "a";
  plan.kinds[1].backend = "bc";
  EXPECT_NE(PlanFingerprint::Compute(plan), split_one_way);
}

TEST(PlanFingerprintTest, GroupBoundariesMatter) {
  // Same flat member sequence, different split into groups.
  SplitPlan plan = BuildOrDie(Parse(kVllm));
  GroupKind& ep = plan.kinds[3];
  const std::string before = PlanFingerprint::Compute(plan);
  ep.offsets = {0, 2, 8};
  EXPECT_NE(PlanFingerprint::Compute(plan), before);
}

}  // namespace
}  // namespace splitd::plan
