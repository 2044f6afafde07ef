#include "common/topology_document.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/yaml.h"

namespace splitd {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::EnumValueDescriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;
using ::google::protobuf::Reflection;
using ::nlohmann::ordered_json;

// Longest scalar text quoted back in an error message.
constexpr size_t kMaxQuotedValue = 40;
// Flow mappings longer than this are written in block style.
constexpr size_t kMaxFlowMapWidth = 100;

// ---------------------------------------------------------------------------------------------
// Loading the YAML tree.

// A document that opens like a JSON object (`{` then `"` or `}`) gets JSON's error message,
// which is more precise for JSON than yaml-cpp's; YAML flow mappings (`{cluster: x}`) do not.
bool LooksLikeJson(absl::string_view text) {
  absl::string_view rest = absl::StripLeadingAsciiWhitespace(text);
  if (!absl::ConsumePrefix(&rest, "{")) return false;
  rest = absl::StripLeadingAsciiWhitespace(rest);
  return !rest.empty() && (rest.front() == '"' || rest.front() == '}');
}

// nlohmann's what() reads "[json.exception.parse_error.101] parse error at line 1, column 12:
// ..."; the bracketed id means nothing to an operator.
std::string JsonSyntaxError(absl::string_view text) {
  try {
    const nlohmann::json parsed = nlohmann::json::parse(text.begin(), text.end());
    static_cast<void>(parsed);  // only its errors matter here
  } catch (const nlohmann::json::exception& e) {
    absl::string_view what = e.what();
    size_t bracket = what.find("] ");
    if (bracket != absl::string_view::npos) what.remove_prefix(bracket + 2);
    return absl::StrCat("JSON ", what);
  }
  return "";
}

// Counts the documents of a YAML stream without building them.
class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

absl::StatusOr<YAML::Node> LoadDocument(absl::string_view text) {
  std::vector<YAML::Node> documents;
  try {
    // yaml-cpp 0.7's LoadAll never ends on some malformed streams (a lone ","): it keeps
    // finding empty documents. Count at most two documents first, then load the one.
    std::istringstream stream{std::string(text)};
    YAML::Parser parser(stream);
    DocumentCounter counter;
    int count = 0;
    while (count < 2 && parser.HandleNextDocument(counter)) ++count;
    if (count > 1) {
      return absl::InvalidArgumentError(
          "topology document holds more than one YAML document; expected one");
    }
    if (count == 1) documents.push_back(YAML::Load(std::string(text)));
  } catch (const YAML::Exception& e) {
    if (LooksLikeJson(text)) {
      std::string json_error = JsonSyntaxError(text);
      if (!json_error.empty()) return absl::InvalidArgumentError(json_error);
    }
    if (e.mark.is_null()) return absl::InvalidArgumentError(absl::StrCat("YAML error: ", e.msg));
    return absl::InvalidArgumentError(absl::StrCat("YAML syntax error at line ", e.mark.line + 1,
                                                   ", column ", e.mark.column + 1, ": ", e.msg));
  }
  if (documents.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat("topology document holds ", documents.size(),
                                                   " YAML documents; expected one"));
  }
  if (documents.empty() || documents.front().IsNull()) {
    return absl::InvalidArgumentError("topology document is empty");
  }
  return documents.front();
}

// "a list", "a mapping", "null" or the scalar's text in quotes, for "expected X, got Y".
std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar: {
      const std::string& text = node.Scalar();
      if (text.size() <= kMaxQuotedValue) return absl::StrCat("\"", absl::CEscape(text), "\"");
      return absl::StrCat("\"", absl::CEscape(text.substr(0, kMaxQuotedValue)), "...\"");
    }
    default:
      return "null";
  }
}

std::string Join(const std::string& path, absl::string_view name) {
  return path.empty() ? std::string(name) : absl::StrCat(path, ".", name);
}

// Paths in messages read like the daemon's: "groups[4].split_ranks[1][0]".
std::string Index(const std::string& path, size_t i) { return absl::StrCat(path, "[", i, "]"); }

absl::Status TypeError(const std::string& path, absl::string_view expected,
                       const YAML::Node& node) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": expected ", expected, ", got ", Describe(node)));
}

// RankList is written as the bare list of its ranks (as docs/plan-format.md writes it:
// `split_ranks: [[0, 3], ...]`).
bool IsRankList(const Descriptor* descriptor) { return descriptor == v1::RankList::descriptor(); }

bool ParseBool(absl::string_view text, bool* value) {
  if (text == "true" || text == "True" || text == "TRUE") {
    *value = true;
    return true;
  }
  if (text == "false" || text == "False" || text == "FALSE") {
    *value = false;
    return true;
  }
  return false;
}

// Accepts what YAML and the protobuf JSON mapping call a float, including .inf, .nan,
// "Infinity" and "NaN".
bool ParseDouble(absl::string_view text, double* value) {
  std::string lower = absl::AsciiStrToLower(text);
  if (lower == ".nan" || lower == "nan") {
    *value = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  bool negative = !lower.empty() && lower.front() == '-';
  absl::string_view magnitude = lower;
  if (!magnitude.empty() && (magnitude.front() == '-' || magnitude.front() == '+')) {
    magnitude.remove_prefix(1);
  }
  if (magnitude == ".inf" || magnitude == "inf" || magnitude == "infinity") {
    *value = negative ? -std::numeric_limits<double>::infinity()
                      : std::numeric_limits<double>::infinity();
    return true;
  }
  return absl::SimpleAtod(text, value);
}

bool IsIntegerText(absl::string_view text) {
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) text.remove_prefix(1);
  return !text.empty() && std::all_of(text.begin(), text.end(), absl::ascii_isdigit);
}

// Fills messages from a YAML tree through reflection, so that every value is read as the type
// of the field it lands in: `name: 123` is the string "123", `size: "2"` the integer 2.
class ProtoReader {
 public:
  // `budget` bounds the number of values visited, which aliases could otherwise multiply.
  explicit ProtoReader(int64_t budget) : budget_(budget) {}

  absl::Status ReadMessage(const YAML::Node& node, const std::string& path, Message* message) {
    const Descriptor* descriptor = message->GetDescriptor();
    if (IsRankList(descriptor) && node.IsSequence()) {
      return ReadRepeated(node, path,
                          descriptor->FindFieldByNumber(v1::RankList::kRanksFieldNumber), message);
    }
    if (!node.IsMap()) return TypeError(path, "a mapping", node);
    std::vector<bool> seen(descriptor->field_count(), false);
    for (const auto& entry : node) {
      RETURN_IF_ERROR(Spend());
      if (!entry.first.IsScalar()) return TypeError(path, "field names as keys", entry.first);
      const std::string& key = entry.first.Scalar();
      const FieldDescriptor* field = FindField(descriptor, key);
      if (field == nullptr) return UnknownField(path, key, descriptor);
      std::string field_path = Join(path, field->name());
      RETURN_IF_ERROR(MarkSeen(field, path, &seen));
      if (entry.second.IsNull()) continue;  // null means "not set", as in the JSON mapping
      if (field->is_map()) {
        RETURN_IF_ERROR(ReadMap(entry.second, field_path, field, message));
      } else if (field->is_repeated()) {
        RETURN_IF_ERROR(ReadRepeated(entry.second, field_path, field, message));
      } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        RETURN_IF_ERROR(ReadMessage(entry.second, field_path,
                                    message->GetReflection()->MutableMessage(message, field)));
      } else {
        RETURN_IF_ERROR(ReadScalar(entry.second, field_path, field, /*add=*/false, message));
      }
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Spend() {
    if (--budget_ >= 0) return absl::OkStatus();
    return absl::ResourceExhaustedError(
        "topology document expands to more values than its size allows (nested YAML aliases?)");
  }

  static const FieldDescriptor* FindField(const Descriptor* descriptor, const std::string& key) {
    const FieldDescriptor* field = descriptor->FindFieldByName(key);
    if (field != nullptr) return field;
    for (int i = 0; i < descriptor->field_count(); ++i) {
      if (descriptor->field(i)->json_name() == key) return descriptor->field(i);
    }
    return nullptr;
  }

  static absl::Status UnknownField(const std::string& path, const std::string& key,
                                   const Descriptor* descriptor) {
    std::vector<std::string> known;
    for (int i = 0; i < descriptor->field_count(); ++i) {
      known.push_back(descriptor->field(i)->name());
    }
    return absl::InvalidArgumentError(
        absl::StrCat(path.empty() ? "" : absl::StrCat(path, ": "), "unknown field \"",
                     absl::CEscape(key), "\" (known fields: ", absl::StrJoin(known, ", "), ")"));
  }

  // A field given twice (also as snake_case and camelCase), or two members of one oneof.
  static absl::Status MarkSeen(const FieldDescriptor* field, const std::string& path,
                               std::vector<bool>* seen) {
    std::string where = path.empty() ? "" : absl::StrCat(path, ": ");
    if ((*seen)[field->index()]) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "field \"", field->name(), "\" is given more than once"));
    }
    (*seen)[field->index()] = true;
    if (const auto* oneof = field->containing_oneof(); oneof != nullptr) {
      for (int i = 0; i < oneof->field_count(); ++i) {
        const FieldDescriptor* other = oneof->field(i);
        if (other != field && (*seen)[other->index()]) {
          return absl::InvalidArgumentError(absl::StrCat(where, "fields \"", other->name(),
                                                         "\" and \"", field->name(),
                                                         "\" exclude each other"));
        }
      }
    }
    return absl::OkStatus();
  }

  absl::Status ReadRepeated(const YAML::Node& node, const std::string& path,
                            const FieldDescriptor* field, Message* message) {
    if (!node.IsSequence()) return TypeError(path, "a list", node);
    const Reflection* reflection = message->GetReflection();
    size_t i = 0;
    for (const YAML::Node& element : node) {
      RETURN_IF_ERROR(Spend());
      std::string element_path = Index(path, i++);
      if (element.IsNull()) {
        return absl::InvalidArgumentError(absl::StrCat(element_path, ": null is not allowed"));
      }
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        Message* added = reflection->AddMessage(message, field);
        if (IsRankList(field->message_type()) && !element.IsSequence() && !element.IsMap()) {
          return TypeError(element_path, "a list of ranks", element);
        }
        RETURN_IF_ERROR(ReadMessage(element, element_path, added));
      } else {
        RETURN_IF_ERROR(ReadScalar(element, element_path, field, /*add=*/true, message));
      }
    }
    return absl::OkStatus();
  }

  absl::Status ReadMap(const YAML::Node& node, const std::string& path,
                       const FieldDescriptor* field, Message* message) {
    if (!node.IsMap()) return TypeError(path, "a mapping", node);
    const FieldDescriptor* key_field = field->message_type()->map_key();
    const FieldDescriptor* value_field = field->message_type()->map_value();
    for (const auto& entry : node) {
      RETURN_IF_ERROR(Spend());
      Message* added = message->GetReflection()->AddMessage(message, field);
      std::string entry_path = absl::StrCat(path, "[", Describe(entry.first), "]");
      RETURN_IF_ERROR(ReadScalar(entry.first, entry_path, key_field, /*add=*/false, added));
      if (entry.second.IsNull()) continue;
      if (value_field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        RETURN_IF_ERROR(ReadMessage(entry.second, entry_path,
                                    added->GetReflection()->MutableMessage(added, value_field)));
      } else {
        RETURN_IF_ERROR(ReadScalar(entry.second, entry_path, value_field, /*add=*/false, added));
      }
    }
    return absl::OkStatus();
  }

  // Sets (or, with `add`, appends) one scalar field from a YAML scalar, quoted or not.
  absl::Status ReadScalar(const YAML::Node& node, const std::string& path,
                          const FieldDescriptor* field, bool add, Message* message) {
    if (!node.IsScalar()) {
      return TypeError(path,
                       field->cpp_type() == FieldDescriptor::CPPTYPE_STRING
                           ? "a string"
                           : field->cpp_type_name(),
                       node);
    }
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_INT64:
        return ReadSigned(node, path, field, add, message);
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_UINT64:
        return ReadUnsigned(node, path, field, add, message);
      case FieldDescriptor::CPPTYPE_DOUBLE:
      case FieldDescriptor::CPPTYPE_FLOAT:
        return ReadFloatingPoint(node, path, field, add, message);
      case FieldDescriptor::CPPTYPE_BOOL:
        return ReadBool(node, path, field, add, message);
      case FieldDescriptor::CPPTYPE_ENUM:
        return ReadEnum(node, path, field, add, message);
      case FieldDescriptor::CPPTYPE_STRING:
        return ReadString(node, path, field, add, message);
      case FieldDescriptor::CPPTYPE_MESSAGE:
        break;
    }
    return absl::InternalError(absl::StrCat(path, ": unexpected field type"));
  }

  // Called by ReadScalar with a scalar `node` and a field of the type each one reads.

  // int32 and int64: decimal text only; an int32 field refuses values beyond 32 bits.
  static absl::Status ReadSigned(const YAML::Node& node, const std::string& path,
                                 const FieldDescriptor* field, bool add, Message* message) {
    const Reflection* reflection = message->GetReflection();
    const std::string& text = node.Scalar();
    int64_t value = 0;
    if (!absl::SimpleAtoi(text, &value) || !IsIntegerText(text)) {
      return IntegerError(path, node, text);
    }
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_INT64) {
      add ? reflection->AddInt64(message, field, value)
          : reflection->SetInt64(message, field, value);
      return absl::OkStatus();
    }
    if (value < std::numeric_limits<int32_t>::min() ||
        value > std::numeric_limits<int32_t>::max()) {
      return RangeError(path, text, "a 32-bit integer");
    }
    add ? reflection->AddInt32(message, field, static_cast<int32_t>(value))
        : reflection->SetInt32(message, field, static_cast<int32_t>(value));
    return absl::OkStatus();
  }

  // uint32 and uint64: decimal text only; a uint32 field refuses values beyond 32 bits.
  static absl::Status ReadUnsigned(const YAML::Node& node, const std::string& path,
                                   const FieldDescriptor* field, bool add, Message* message) {
    const Reflection* reflection = message->GetReflection();
    const std::string& text = node.Scalar();
    uint64_t value = 0;
    if (!absl::SimpleAtoi(text, &value) || !IsIntegerText(text)) {
      return IntegerError(path, node, text);
    }
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_UINT64) {
      add ? reflection->AddUInt64(message, field, value)
          : reflection->SetUInt64(message, field, value);
      return absl::OkStatus();
    }
    if (value > std::numeric_limits<uint32_t>::max()) {
      return RangeError(path, text, "an unsigned 32-bit integer");
    }
    add ? reflection->AddUInt32(message, field, static_cast<uint32_t>(value))
        : reflection->SetUInt32(message, field, static_cast<uint32_t>(value));
    return absl::OkStatus();
  }

  // double and float, with ParseDouble's spellings of infinity and NaN.
  static absl::Status ReadFloatingPoint(const YAML::Node& node, const std::string& path,
                                        const FieldDescriptor* field, bool add, Message* message) {
    const Reflection* reflection = message->GetReflection();
    double value = 0;
    if (!ParseDouble(node.Scalar(), &value)) return TypeError(path, "a number", node);
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
      add ? reflection->AddDouble(message, field, value)
          : reflection->SetDouble(message, field, value);
    } else {
      add ? reflection->AddFloat(message, field, static_cast<float>(value))
          : reflection->SetFloat(message, field, static_cast<float>(value));
    }
    return absl::OkStatus();
  }

  static absl::Status ReadBool(const YAML::Node& node, const std::string& path,
                               const FieldDescriptor* field, bool add, Message* message) {
    const Reflection* reflection = message->GetReflection();
    bool value = false;
    if (!ParseBool(node.Scalar(), &value)) return TypeError(path, "true or false", node);
    add ? reflection->AddBool(message, field, value) : reflection->SetBool(message, field, value);
    return absl::OkStatus();
  }

  // An enum value by name or, as in the JSON mapping, by number.
  static absl::Status ReadEnum(const YAML::Node& node, const std::string& path,
                               const FieldDescriptor* field, bool add, Message* message) {
    const Reflection* reflection = message->GetReflection();
    const std::string& text = node.Scalar();
    const EnumValueDescriptor* value = field->enum_type()->FindValueByName(text);
    int64_t number = 0;
    if (value == nullptr && IsIntegerText(text) && absl::SimpleAtoi(text, &number)) {
      value = field->enum_type()->FindValueByNumber(static_cast<int>(number));
    }
    if (value == nullptr) {
      std::vector<std::string> names;
      for (int i = 0; i < field->enum_type()->value_count(); ++i) {
        names.push_back(field->enum_type()->value(i)->name());
      }
      return TypeError(path, absl::StrCat("one of ", absl::StrJoin(names, ", ")), node);
    }
    add ? reflection->AddEnum(message, field, value) : reflection->SetEnum(message, field, value);
    return absl::OkStatus();
  }

  // string as written; bytes as base64, as in the JSON mapping.
  static absl::Status ReadString(const YAML::Node& node, const std::string& path,
                                 const FieldDescriptor* field, bool add, Message* message) {
    const Reflection* reflection = message->GetReflection();
    const std::string& text = node.Scalar();
    std::string value = text;
    if (field->type() == FieldDescriptor::TYPE_BYTES && !absl::Base64Unescape(text, &value)) {
      return TypeError(path, "base64 bytes", node);
    }
    add ? reflection->AddString(message, field, std::move(value))
        : reflection->SetString(message, field, std::move(value));
    return absl::OkStatus();
  }

  static absl::Status IntegerError(const std::string& path, const YAML::Node& node,
                                   const std::string& text) {
    if (IsIntegerText(text)) return RangeError(path, text, "a 64-bit integer");
    return TypeError(path, "an integer", node);
  }

  static absl::Status RangeError(const std::string& path, const std::string& text,
                                 absl::string_view type) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", text, " does not fit in ", type));
  }

  int64_t budget_;
};

// ---------------------------------------------------------------------------------------------
// Writing.

ordered_json MessageToJson(const Message& message);

ordered_json DoubleToJson(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  return value;
}

// One value of `field`; `index` < 0 reads the singular field.
ordered_json FieldValueToJson(const Message& message, const FieldDescriptor* field, int index) {
  const Reflection* reflection = message.GetReflection();
  const bool repeated = index >= 0;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return repeated ? reflection->GetRepeatedInt32(message, field, index)
                      : reflection->GetInt32(message, field);
    case FieldDescriptor::CPPTYPE_INT64:
      return repeated ? reflection->GetRepeatedInt64(message, field, index)
                      : reflection->GetInt64(message, field);
    case FieldDescriptor::CPPTYPE_UINT32:
      return repeated ? reflection->GetRepeatedUInt32(message, field, index)
                      : reflection->GetUInt32(message, field);
    case FieldDescriptor::CPPTYPE_UINT64:
      return repeated ? reflection->GetRepeatedUInt64(message, field, index)
                      : reflection->GetUInt64(message, field);
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return DoubleToJson(repeated ? reflection->GetRepeatedDouble(message, field, index)
                                   : reflection->GetDouble(message, field));
    case FieldDescriptor::CPPTYPE_FLOAT:
      return DoubleToJson(repeated ? reflection->GetRepeatedFloat(message, field, index)
                                   : reflection->GetFloat(message, field));
    case FieldDescriptor::CPPTYPE_BOOL:
      return repeated ? reflection->GetRepeatedBool(message, field, index)
                      : reflection->GetBool(message, field);
    case FieldDescriptor::CPPTYPE_ENUM: {
      const EnumValueDescriptor* value = repeated
                                             ? reflection->GetRepeatedEnum(message, field, index)
                                             : reflection->GetEnum(message, field);
      return value->name();
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string value = repeated ? reflection->GetRepeatedString(message, field, index)
                                   : reflection->GetString(message, field);
      if (field->type() == FieldDescriptor::TYPE_BYTES) return absl::Base64Escape(value);
      return value;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return MessageToJson(repeated ? reflection->GetRepeatedMessage(message, field, index)
                                    : reflection->GetMessage(message, field));
  }
  return nullptr;
}

ordered_json MessageToJson(const Message& message) {
  const Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);  // set fields only, in field-number order
  if (IsRankList(message.GetDescriptor())) {
    ordered_json ranks = ordered_json::array();
    for (const FieldDescriptor* field : fields) {
      for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
        ranks.push_back(FieldValueToJson(message, field, i));
      }
    }
    return ranks;
  }
  ordered_json object = ordered_json::object();
  for (const FieldDescriptor* field : fields) {
    ordered_json& value = object[field->name()];
    if (field->is_map()) {
      value = ordered_json::object();
      const FieldDescriptor* key_field = field->message_type()->map_key();
      const FieldDescriptor* value_field = field->message_type()->map_value();
      for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
        const Message& entry = reflection->GetRepeatedMessage(message, field, i);
        ordered_json key = FieldValueToJson(entry, key_field, -1);
        value[key.is_string() ? key.get<std::string>() : key.dump()] =
            FieldValueToJson(entry, value_field, -1);
      }
    } else if (field->is_repeated()) {
      value = ordered_json::array();
      for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
        value.push_back(FieldValueToJson(message, field, i));
      }
    } else {
      value = FieldValueToJson(message, field, -1);
    }
  }
  return object;
}

// Strings that a YAML reader would take for a number, a boolean, null or a date.
bool NeedsQuotes(const std::string& text) {
  if (text.empty() || absl::ascii_isdigit(static_cast<unsigned char>(text.front()))) return true;
  std::string lower = absl::AsciiStrToLower(text);
  for (absl::string_view word : {"~", "null", "true", "false", "yes", "no", "on", "off", "y", "n",
                                 ".inf", "-.inf", "+.inf", ".nan"}) {
    if (lower == word) return true;
  }
  double unused = 0;
  return absl::SimpleAtod(text, &unused);
}

bool HasNestedMapping(const ordered_json& value) {
  for (const auto& child : value) {
    if (child.is_object() || (child.is_array() && HasNestedMapping(child))) return true;
  }
  return false;
}

// Width of `value` written in flow style, counted until it passes `limit`.
size_t FlowWidth(const ordered_json& value, size_t limit) {
  if (!value.is_structured())
    return value.is_string() ? value.get_ref<const std::string&>().size() : value.dump().size();
  size_t width = 2;
  for (auto it = value.begin(); it != value.end() && width <= limit; ++it) {
    if (value.is_object()) width += it.key().size() + 2;
    width += FlowWidth(*it, limit) + 2;
  }
  return width;
}

// Whether a collection is written on one line (YAML flow style, compact JSON).
bool OnOneLine(const ordered_json& value, bool root) {
  return value.empty() ||
         (!root && !HasNestedMapping(value) &&
          (value.is_array() || FlowWidth(value, kMaxFlowMapWidth) <= kMaxFlowMapWidth));
}

std::string JsonScalar(const ordered_json& value) {
  return value.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

void AppendJson(const ordered_json& value, bool root, bool flow, int indent, std::string* out) {
  if (!value.is_structured()) {
    out->append(JsonScalar(value));
    return;
  }
  flow = flow || OnOneLine(value, root);
  const std::string inner(flow ? 0 : indent + 2, ' ');
  out->push_back(value.is_array() ? '[' : '{');
  bool first = true;
  for (auto it = value.begin(); it != value.end(); ++it) {
    out->append(first ? "" : ",");
    out->append(flow ? (first ? "" : " ") : "\n" + inner);
    first = false;
    if (value.is_object()) absl::StrAppend(out, JsonScalar(it.key()), ": ");
    AppendJson(*it, /*root=*/false, flow, indent + 2, out);
  }
  if (!flow && !value.empty()) absl::StrAppend(out, "\n", std::string(indent, ' '));
  out->push_back(value.is_array() ? ']' : '}');
}

void EmitYaml(const ordered_json& value, bool root, bool flow, YAML::Emitter* out) {
  switch (value.type()) {
    case ordered_json::value_t::object:
    case ordered_json::value_t::array: {
      flow = flow || OnOneLine(value, root);
      if (flow) *out << YAML::Flow;
      if (value.is_array()) {
        *out << YAML::BeginSeq;
        for (const auto& element : value) EmitYaml(element, false, flow, out);
        *out << YAML::EndSeq;
      } else {
        *out << YAML::BeginMap;
        for (auto it = value.begin(); it != value.end(); ++it) {
          *out << YAML::Key;
          if (NeedsQuotes(it.key())) *out << YAML::DoubleQuoted;
          *out << it.key() << YAML::Value;
          EmitYaml(it.value(), false, flow, out);
        }
        *out << YAML::EndMap;
      }
      return;
    }
    case ordered_json::value_t::string: {
      const std::string& text = value.get_ref<const std::string&>();
      if (NeedsQuotes(text)) *out << YAML::DoubleQuoted;
      *out << text;
      return;
    }
    case ordered_json::value_t::null:
      *out << YAML::Null;
      return;
    default:  // numbers and booleans: JSON's spelling is valid plain YAML
      *out << value.dump();
      return;
  }
}

}  // namespace

absl::StatusOr<v1::Topology> TopologyDocument::Parse(absl::string_view text) {
  if (text.size() > kMaxDocumentBytes) {
    return absl::ResourceExhaustedError(absl::StrCat("topology document is ", text.size(),
                                                     " bytes; the limit is ",
                                                     kMaxDocumentBytes >> 20, " MiB"));
  }
  if (absl::StripAsciiWhitespace(text).empty()) {
    return absl::InvalidArgumentError("topology document is empty");
  }
  ASSIGN_OR_RETURN(YAML::Node root, LoadDocument(text));
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "topology document must be a mapping of field names to values, got ", Describe(root)));
  }
  v1::Topology topology;
  // Every value takes at least one byte of an alias-free document and a key-only flow entry
  // ("{a, b}") two values for two bytes; more than that can only come from aliases.
  ProtoReader reader(static_cast<int64_t>(2 * text.size() + 64));
  RETURN_IF_ERROR(reader.ReadMessage(root, "", &topology));
  return topology;
}

nlohmann::ordered_json TopologyDocument::ToJsonValue(const v1::Topology& topology) {
  return MessageToJson(topology);
}

std::string TopologyDocument::ToJson(const v1::Topology& topology) {
  return RenderJson(ToJsonValue(topology));
}

std::string TopologyDocument::ToYaml(const v1::Topology& topology) {
  return RenderYaml(ToJsonValue(topology));
}

std::string TopologyDocument::RenderJson(const nlohmann::ordered_json& value) {
  std::string out;
  AppendJson(value, /*root=*/true, /*flow=*/false, 0, &out);
  out.push_back('\n');
  return out;
}

std::string TopologyDocument::RenderYaml(const nlohmann::ordered_json& value) {
  YAML::Emitter out;
  out.SetIndent(2);
  EmitYaml(value, /*root=*/true, /*flow=*/false, &out);
  return absl::StrCat(out.c_str(), "\n");
}

}  // namespace splitd
