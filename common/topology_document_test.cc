#include "common/topology_document.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace splitd {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

// docs/architecture.md, "Topology and plan".
constexpr char kDesignExample[] = R"yaml(
cluster: llama-serve          # name, unique in the daemon
dims:                         # innermost (fastest-varying) first; product = world size
  - {name: tp, size: 2}
  - {name: pp, size: 2}
  - {name: dp, size: 2}
nodes: {gpus_per_node: 4}     # optional locality: consecutive ranks fill a node
groups:                       # which subgroups to form; default: one group kind per dim
  - {name: tp, dims: [tp], backend: "cpu:gloo,cuda:nccl", local: node}   # local: must stay inside a node
  - {name: pp, dims: [pp]}
  - {name: dp, dims: [dp]}
  - {name: ep, dims: [tp, dp]}            # composite: ranks that vary over tp and dp, fixed elsewhere
  - {name: custom, split_ranks: [[0, 3], [1, 2], [4, 7], [5, 6]]}   # explicit lists are allowed too
method: split                 # split | init — init is the per-group rollback path (new_group style)
backend: "cpu:gloo"           # default backend string: "cpu:gloo", "cuda:nccl" or "cpu:gloo,cuda:nccl"
validation: {allreduce_elements: 1024, bandwidth_bytes: 0}
)yaml";

// The same document in JSON, with the protobuf JSON mapping's camelCase names in places.
constexpr char kDesignExampleJson[] = R"json({
  "cluster": "llama-serve",
  "dims": [{"name": "tp", "size": 2}, {"name": "pp", "size": 2}, {"name": "dp", "size": 2}],
  "nodes": {"gpusPerNode": 4},
  "groups": [
    {"name": "tp", "dims": ["tp"], "backend": "cpu:gloo,cuda:nccl", "local": "node"},
    {"name": "pp", "dims": ["pp"]},
    {"name": "dp", "dims": ["dp"]},
    {"name": "ep", "dims": ["tp", "dp"]},
    {"name": "custom", "splitRanks": [[0, 3], [1, 2], [4, 7], [5, 6]]}
  ],
  "method": "split",
  "backend": "cpu:gloo",
  "validation": {"allreduce_elements": 1024, "bandwidthBytes": 0}
})json";

v1::Topology DesignExampleProto() {
  v1::Topology topology;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        cluster: "llama-serve"
        dims { name: "tp" size: 2 }
        dims { name: "pp" size: 2 }
        dims { name: "dp" size: 2 }
        nodes { gpus_per_node: 4 }
        groups { name: "tp" dims: "tp" backend: "cpu:gloo,cuda:nccl" local: "node" }
        groups { name: "pp" dims: "pp" }
        groups { name: "dp" dims: "dp" }
        groups { name: "ep" dims: "tp" dims: "dp" }
        groups {
          name: "custom"
          split_ranks { ranks: [ 0, 3 ] }
          split_ranks { ranks: [ 1, 2 ] }
          split_ranks { ranks: [ 4, 7 ] }
          split_ranks { ranks: [ 5, 6 ] }
        }
        method: "split"
        backend: "cpu:gloo"
        validation { allreduce_elements: 1024 }
      )pb",
      &topology));
  return topology;
}

bool Equal(const v1::Topology& a, const v1::Topology& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

TEST(TopologyDocumentTest, ParsesDesignExample) {
  absl::StatusOr<v1::Topology> topology = TopologyDocument::Parse(kDesignExample);
  ASSERT_THAT(topology, IsOk());
  EXPECT_EQ(topology->cluster(), "llama-serve");
  ASSERT_EQ(topology->dims_size(), 3);
  EXPECT_EQ(topology->dims(0).name(), "tp");
  EXPECT_EQ(topology->dims(0).size(), 2);
  EXPECT_EQ(topology->dims(2).name(), "dp");
  EXPECT_TRUE(topology->has_nodes());
  EXPECT_EQ(topology->nodes().gpus_per_node(), 4);
  ASSERT_EQ(topology->groups_size(), 5);
  EXPECT_EQ(topology->groups(0).backend(), "cpu:gloo,cuda:nccl");
  EXPECT_EQ(topology->groups(0).local(), "node");
  EXPECT_THAT(topology->groups(3).dims(), ::testing::ElementsAre("tp", "dp"));
  ASSERT_EQ(topology->groups(4).split_ranks_size(), 4);
  EXPECT_THAT(topology->groups(4).split_ranks(1).ranks(), ::testing::ElementsAre(1, 2));
  EXPECT_EQ(topology->method(), "split");
  EXPECT_EQ(topology->backend(), "cpu:gloo");
  EXPECT_EQ(topology->validation().allreduce_elements(), 1024);
  EXPECT_TRUE(Equal(*topology, DesignExampleProto())) << topology->DebugString();
}

TEST(TopologyDocumentTest, ParsesDesignExampleAsJson) {
  absl::StatusOr<v1::Topology> topology = TopologyDocument::Parse(kDesignExampleJson);
  ASSERT_THAT(topology, IsOk());
  EXPECT_TRUE(Equal(*topology, DesignExampleProto())) << topology->DebugString();
}

TEST(TopologyDocumentTest, AcceptsProtoShapeOfSplitRanks) {
  absl::StatusOr<v1::Topology> topology = TopologyDocument::Parse(
      "cluster: c\ngroups:\n  - name: x\n    split_ranks: [{ranks: [0, 3]}, {ranks: [1, 2]}]\n");
  ASSERT_THAT(topology, IsOk());
  ASSERT_EQ(topology->groups(0).split_ranks_size(), 2);
  EXPECT_THAT(topology->groups(0).split_ranks(0).ranks(), ::testing::ElementsAre(0, 3));
}

TEST(TopologyDocumentTest, ReadsValuesAsTheTypeOfTheirField) {
  // Numbers in string fields stay text; quoted integers are integers (as in the JSON mapping);
  // null leaves a field unset.
  absl::StatusOr<v1::Topology> topology = TopologyDocument::Parse(
      "cluster: 2024\ndims: [{name: 1.0, size: \"8\"}]\nmethod: ~\nworld_size: +8\n");
  ASSERT_THAT(topology, IsOk());
  EXPECT_EQ(topology->cluster(), "2024");
  EXPECT_EQ(topology->dims(0).name(), "1.0");
  EXPECT_EQ(topology->dims(0).size(), 8);
  EXPECT_EQ(topology->method(), "");
  EXPECT_EQ(topology->world_size(), 8);
}

TEST(TopologyDocumentTest, RoundTripsThroughYamlAndJson) {
  v1::Topology topology = DesignExampleProto();
  // Strings that read as other types, a mesh, negative and large numbers.
  topology.set_cluster("123");
  topology.set_method("true");
  topology.mutable_groups(2)->set_backend("a: b, c");
  v1::Mesh* mesh = topology.add_meshes();
  mesh->set_name("expert");
  mesh->add_dims()->set_name("ep");
  mesh->mutable_dims(0)->set_size(-3);
  topology.set_world_size(int64_t{1} << 40);
  topology.mutable_validation()->set_bandwidth_bytes(int64_t{1} << 34);

  std::string yaml = TopologyDocument::ToYaml(topology);
  absl::StatusOr<v1::Topology> from_yaml = TopologyDocument::Parse(yaml);
  ASSERT_THAT(from_yaml, IsOk()) << yaml;
  EXPECT_TRUE(Equal(*from_yaml, topology)) << yaml;

  std::string json = TopologyDocument::ToJson(topology);
  absl::StatusOr<v1::Topology> from_json = TopologyDocument::Parse(json);
  ASSERT_THAT(from_json, IsOk()) << json;
  EXPECT_TRUE(Equal(*from_json, topology)) << json;

  // Empty (but present) sub-messages survive too.
  v1::Topology sparse;
  sparse.set_cluster("c");
  sparse.mutable_nodes();
  absl::StatusOr<v1::Topology> from_sparse =
      TopologyDocument::Parse(TopologyDocument::ToYaml(sparse));
  ASSERT_THAT(from_sparse, IsOk());
  EXPECT_TRUE(from_sparse->has_nodes());
  EXPECT_FALSE(from_sparse->has_validation());
}

// `stream_grace_ms: 0` (off) is set, and stays set through YAML; unset stays unset.
TEST(TopologyDocumentTest, StreamGraceZeroIsKeptAsSet) {
  absl::StatusOr<v1::Topology> off =
      TopologyDocument::Parse("cluster: c\nelastic: {stream_grace_ms: 0}\n");
  ASSERT_THAT(off, IsOk());
  ASSERT_TRUE(off->elastic().has_stream_grace_ms());
  absl::StatusOr<v1::Topology> again = TopologyDocument::Parse(TopologyDocument::ToYaml(*off));
  ASSERT_THAT(again, IsOk());
  EXPECT_TRUE(again->elastic().has_stream_grace_ms());
  EXPECT_EQ(again->elastic().stream_grace_ms(), 0);
  absl::StatusOr<v1::Topology> unset = TopologyDocument::Parse("cluster: c\nelastic: {min: 1}\n");
  ASSERT_THAT(unset, IsOk());
  EXPECT_FALSE(unset->elastic().has_stream_grace_ms());
}

// `preflight: false` is a set field whose value is the default: it must be written and read back
// as set, or the daemon would take it for "unset" (true).
TEST(TopologyDocumentTest, ReadinessPreflightAndDeadlinesRoundTrip) {
  absl::StatusOr<v1::Topology> topology = TopologyDocument::Parse(
      "cluster: c\nreadiness: workload\npreflight: false\n"
      "deadlines: {bootstrap_ms: 60000, split_ms: 30000, validate_ms: 0, workloadMs: 45000}\n");
  ASSERT_THAT(topology, IsOk());
  EXPECT_EQ(topology->readiness(), "workload");
  ASSERT_TRUE(topology->has_preflight());
  EXPECT_FALSE(topology->preflight());
  EXPECT_EQ(topology->deadlines().bootstrap_ms(), 60000);
  EXPECT_EQ(topology->deadlines().split_ms(), 30000);
  EXPECT_EQ(topology->deadlines().workload_ms(), 45000);

  const std::string yaml = TopologyDocument::ToYaml(*topology);
  EXPECT_THAT(yaml, HasSubstr("preflight: false\n"));
  EXPECT_THAT(yaml, HasSubstr("deadlines: {bootstrap_ms: 60000, split_ms: 30000, workload_ms: "
                              "45000}\n"));
  absl::StatusOr<v1::Topology> from_yaml = TopologyDocument::Parse(yaml);
  ASSERT_THAT(from_yaml, IsOk()) << yaml;
  EXPECT_TRUE(Equal(*from_yaml, *topology)) << yaml;
  ASSERT_TRUE(from_yaml->has_preflight()) << yaml;
  EXPECT_FALSE(from_yaml->preflight());

  const std::string json = TopologyDocument::ToJson(*topology);
  EXPECT_THAT(json, HasSubstr("\"preflight\": false"));
  absl::StatusOr<v1::Topology> from_json = TopologyDocument::Parse(json);
  ASSERT_THAT(from_json, IsOk()) << json;
  EXPECT_TRUE(Equal(*from_json, *topology)) << json;
  ASSERT_TRUE(from_json->has_preflight()) << json;

  // Unset stays unset: nothing is written for it.
  absl::StatusOr<v1::Topology> plain = TopologyDocument::Parse("cluster: c\n");
  ASSERT_THAT(plain, IsOk());
  EXPECT_FALSE(plain->has_preflight());
  EXPECT_THAT(TopologyDocument::ToYaml(*plain), Not(HasSubstr("preflight")));

  EXPECT_THAT(TopologyDocument::Parse("cluster: c\npreflight: maybe\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("preflight: expected true or false, got \"maybe\"")));
  EXPECT_THAT(TopologyDocument::Parse("cluster: c\ndeadlines: {split_ms: soon}\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("deadlines.split_ms: expected an integer, got \"soon\"")));
}

TEST(TopologyDocumentTest, WritesTheUserFacingShape) {
  std::string yaml = TopologyDocument::ToYaml(DesignExampleProto());
  EXPECT_THAT(yaml, HasSubstr("cluster: llama-serve\n"));
  EXPECT_THAT(yaml, HasSubstr("  - {name: tp, size: 2}\n"));
  EXPECT_THAT(yaml, HasSubstr("nodes: {gpus_per_node: 4}\n"));
  EXPECT_THAT(yaml,
              HasSubstr("  - {name: custom, split_ranks: [[0, 3], [1, 2], [4, 7], [5, 6]]}\n"));

  nlohmann::json json = nlohmann::json::parse(TopologyDocument::ToJson(DesignExampleProto()));
  EXPECT_EQ(json["dims"][0]["size"], 2);  // a number, not the JSON mapping's "2"
  EXPECT_EQ(json["nodes"]["gpus_per_node"], 4);
  EXPECT_EQ(json["groups"][4]["split_ranks"], nlohmann::json::parse("[[0,3],[1,2],[4,7],[5,6]]"));
  EXPECT_FALSE(json.contains("world_size"));  // unset fields are left out
}

TEST(TopologyDocumentTest, RenderJsonKeepsSmallLeavesOnOneLine) {
  EXPECT_THAT(TopologyDocument::ToJson(DesignExampleProto()),
              ::testing::StartsWith("{\n"
                                    "  \"cluster\": \"llama-serve\",\n"
                                    "  \"dims\": [\n"
                                    "    {\"name\": \"tp\", \"size\": 2},\n"
                                    "    {\"name\": \"pp\", \"size\": 2},\n"
                                    "    {\"name\": \"dp\", \"size\": 2}\n"
                                    "  ],\n"
                                    "  \"nodes\": {\"gpus_per_node\": 4},\n"));
  EXPECT_EQ(TopologyDocument::RenderJson(nlohmann::ordered_json::array()), "[]\n");
  EXPECT_EQ(TopologyDocument::RenderJson(nlohmann::ordered_json::parse(R"({"a": {"b": {}}})")),
            "{\n  \"a\": {\n    \"b\": {}\n  }\n}\n");
}

TEST(TopologyDocumentTest, RenderYamlQuotesAmbiguousStrings) {
  nlohmann::ordered_json value = {{"a", "123"}, {"b", "yes"},   {"c", ""},     {"d", 7},
                                  {"e", true},  {"f", nullptr}, {"g", "plain"}};
  EXPECT_EQ(TopologyDocument::RenderYaml(value),
            "a: \"123\"\nb: \"yes\"\nc: \"\"\nd: 7\ne: true\nf: ~\ng: plain\n");
}

// A few hundred bytes that alias their way to 400,000 ranks.
std::string AliasBomb() {
  std::string list = "&l [0";
  for (int i = 1; i < 200; ++i) absl::StrAppend(&list, ", ", i);
  std::string document = absl::StrCat("groups:\n  - {name: g0, split_ranks: &r [", list, "]");
  for (int i = 1; i < 200; ++i) absl::StrAppend(&document, ", *l");
  absl::StrAppend(&document, "]}\n");
  for (int i = 1; i < 10; ++i)
    absl::StrAppend(&document, "  - {name: g", i, ", split_ranks: *r}\n");
  return document;
}

struct ErrorCase {
  std::string name;
  std::string document;
  absl::StatusCode code;
  std::string message;
};

class TopologyDocumentErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(TopologyDocumentErrorTest, RefusesWithOneLineMessage) {
  absl::StatusOr<v1::Topology> topology = TopologyDocument::Parse(GetParam().document);
  EXPECT_THAT(topology, StatusIs(GetParam().code, HasSubstr(GetParam().message)));
  EXPECT_EQ(topology.status().message().find('\n'), absl::string_view::npos) << topology.status();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, TopologyDocumentErrorTest,
    ::testing::ValuesIn(std::vector<ErrorCase>{
        {"Empty", "", absl::StatusCode::kInvalidArgument, "topology document is empty"},
        {"Blank", " \n\t\n", absl::StatusCode::kInvalidArgument, "topology document is empty"},
        {"CommentsOnly", "# nothing here\n", absl::StatusCode::kInvalidArgument,
         "topology document is empty"},
        {"Null", "~\n", absl::StatusCode::kInvalidArgument, "topology document is empty"},
        {"Garbage", "hello world", absl::StatusCode::kInvalidArgument,
         "topology document must be a mapping of field names to values, got \"hello world\""},
        {"List", "- a\n- b\n", absl::StatusCode::kInvalidArgument,
         "must be a mapping of field names to values, got a list"},
        {"YamlSyntax", "cluster: x\ndims: [1, 2\nmethod: split\n",
         absl::StatusCode::kInvalidArgument, "YAML syntax error at line 3, column"},
        {"BadIndentation", "cluster: x\n  dims: 2\n", absl::StatusCode::kInvalidArgument,
         "YAML syntax error at line 2, column 7: illegal map value"},
        {"JsonSyntax", "{\"cluster\": \"x\"\n \"dims\": []}", absl::StatusCode::kInvalidArgument,
         "JSON parse error at line 2, column 7: syntax error while parsing object"},
        {"TwoDocuments", "cluster: a\n---\ncluster: b\n", absl::StatusCode::kInvalidArgument,
         "holds more than one YAML document; expected one"},
        // yaml-cpp 0.7's LoadAll never returns on this one (found by tests/fuzz).
        {"LoneComma", ",", absl::StatusCode::kInvalidArgument, "more than one YAML document"},
        {"UnknownTopField", "cluster: x\ngrups: []\n", absl::StatusCode::kInvalidArgument,
         "unknown field \"grups\" (known fields: cluster, dims,"},
        {"UnknownNestedField", "dims: [{name: tp, sise: 2}]\n", absl::StatusCode::kInvalidArgument,
         "dims[0]: unknown field \"sise\" (known fields: name, size)"},
        {"UnknownGroupField", "groups: [{name: tp, dim: [tp]}]\n",
         absl::StatusCode::kInvalidArgument, "groups[0]: unknown field \"dim\""},
        {"WrongTypeInteger", "dims: [{name: tp, size: \"abc\"}]\n",
         absl::StatusCode::kInvalidArgument, "dims[0].size: expected an integer, got \"abc\""},
        {"FractionalInteger", "dims: [{name: tp, size: 2.5}]\n", absl::StatusCode::kInvalidArgument,
         "dims[0].size: expected an integer, got \"2.5\""},
        {"IntegerOutOfRange", "world_size: 99999999999999999999\n",
         absl::StatusCode::kInvalidArgument,
         "world_size: 99999999999999999999 does not fit in a 64-bit integer"},
        {"MappingExpected", "nodes: 4\n", absl::StatusCode::kInvalidArgument,
         "nodes: expected a mapping, got \"4\""},
        {"ListExpected", "dims: {name: tp}\n", absl::StatusCode::kInvalidArgument,
         "dims: expected a list, got a mapping"},
        {"StringExpected", "cluster: [a]\n", absl::StatusCode::kInvalidArgument,
         "cluster: expected a string, got a list"},
        {"RankListExpected", "groups: [{name: x, split_ranks: [3]}]\n",
         absl::StatusCode::kInvalidArgument,
         "groups[0].split_ranks[0]: expected a list of ranks, got \"3\""},
        {"RankNotInteger", "groups: [{name: x, split_ranks: [[0, x]]}]\n",
         absl::StatusCode::kInvalidArgument,
         "groups[0].split_ranks[0][1]: expected an integer, got \"x\""},
        {"NullInList", "dims: [~]\n", absl::StatusCode::kInvalidArgument,
         "dims[0]: null is not allowed"},
        {"DuplicateField", "cluster: a\ncluster: b\n", absl::StatusCode::kInvalidArgument,
         "field \"cluster\" is given more than once"},
        {"DuplicateFieldCamelCase", "nodes: {gpus_per_node: 4, gpusPerNode: 8}\n",
         absl::StatusCode::kInvalidArgument,
         "nodes: field \"gpus_per_node\" is given more than once"},
        {"AliasBomb", AliasBomb(), absl::StatusCode::kResourceExhausted,
         "more values than its size allows"},
    }),
    [](const ::testing::TestParamInfo<ErrorCase>& info) { return info.param.name; });

TEST(TopologyDocumentTest, RefusesDocumentsOverTheSizeLimit) {
  std::string document = "cluster: x\n";
  document.resize(TopologyDocument::kMaxDocumentBytes + 1, ' ');
  EXPECT_THAT(TopologyDocument::Parse(document),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("limit is 16 MiB")));
}

TEST(TopologyDocumentTest, ParsesTenThousandDimsQuickly) {
  // The daemon refuses this topology (too many dims); the parser must still read it fast.
  std::string yaml = "cluster: wide\ndims:\n";
  nlohmann::json json = {{"cluster", "wide"}, {"dims", nlohmann::json::array()}};
  for (int i = 0; i < 10000; ++i) {
    absl::StrAppend(&yaml, "  - {name: d", i, ", size: 1}\n");
    json["dims"].push_back({{"name", absl::StrCat("d", i)}, {"size", 1}});
  }
  for (const std::string& document : {yaml, json.dump()}) {
    absl::Time start = absl::Now();
    absl::StatusOr<v1::Topology> topology = TopologyDocument::Parse(document);
    absl::Duration elapsed = absl::Now() - start;
    ASSERT_THAT(topology, IsOk());
    ASSERT_EQ(topology->dims_size(), 10000);
    EXPECT_EQ(topology->dims(9999).name(), "d9999");
    // Generous bound: it takes milliseconds; quadratic behaviour would take far longer.
    EXPECT_LT(elapsed, absl::Seconds(5));
  }
}

}  // namespace
}  // namespace splitd
