#ifndef SPLITD_COMMON_TOPOLOGY_DOCUMENT_H_
#define SPLITD_COMMON_TOPOLOGY_DOCUMENT_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json_fwd.hpp"
#include "splitd/v1/topology.pb.h"

namespace splitd {

// Reads and writes the topology document operators declare (docs/architecture.md, "Topology and
// plan"): YAML or JSON with the proto's field names (snake_case; the protobuf JSON camelCase names
// are accepted too). The document differs from the proto in one place: `groups[i].split_ranks` is a
// list of rank lists (`[[0, 3], [1, 2]]`) where the proto has `[{ranks: [0, 3]}, ...]`; both shapes
// are read, the list shape is written.
//
// Only the shape of the document is checked here (syntax, known fields, value types); whether
// the topology makes sense is the daemon's call (plan::TopologyValidator). Stateless and
// thread-safe.
class TopologyDocument {
 public:
  // Documents larger than this are refused before they are parsed.
  static constexpr size_t kMaxDocumentBytes = size_t{16} << 20;

  // Parses a YAML or JSON document. Every error is one line: INVALID_ARGUMENT for an empty
  // document, a syntax error ("line 3, column 7: ..."), a document that is not a mapping, an
  // unknown or repeated field, or a value of the wrong type ("dims[0].size: expected an
  // integer, got \"abc\""); RESOURCE_EXHAUSTED for a document over kMaxDocumentBytes or one
  // whose aliases expand beyond what its size allows.
  static absl::StatusOr<v1::Topology> Parse(absl::string_view text);

  // The document as YAML in the style of docs/plan-format.md (block mappings and lists at the top,
  // flow style for small leaves); Parse(ToYaml(t)) equals t.
  static std::string ToYaml(const v1::Topology& topology);

  // The document as indented JSON, keys in field order; Parse(ToJson(t)) equals t.
  static std::string ToJson(const v1::Topology& topology);

  // The document as a JSON value (int64 as numbers, split_ranks as nested lists, unset fields
  // left out), for callers that embed a topology in a larger object.
  static nlohmann::ordered_json ToJsonValue(const v1::Topology& topology);

  // Render any JSON value in the style of ToYaml and ToJson: small leaves (mappings without
  // nested mappings, lists of scalars or of such lists) on one line, the rest indented by two.
  // In YAML, strings that would read back as another type ("123", "true", "") are quoted.
  // Shared with splitctl's `-o yaml` and `-o json`.
  static std::string RenderYaml(const nlohmann::ordered_json& value);
  static std::string RenderJson(const nlohmann::ordered_json& value);
};

}  // namespace splitd

#endif  // SPLITD_COMMON_TOPOLOGY_DOCUMENT_H_
