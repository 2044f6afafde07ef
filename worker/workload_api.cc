#include "worker/workload_api.h"

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/error_table.h"
#include "nlohmann/json.hpp"

namespace splitd::worker {
namespace {

using Json = nlohmann::json;

constexpr int64_t kDefaultStoreWaitMs = 300000;
constexpr int64_t kDefaultPlanWaitMs = 30000;
constexpr int64_t kMaxWaitMs = 600000;

int HttpStatusOf(absl::StatusCode code) { return DaemonErrorCode(code).http_status; }

std::string Dump(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

HttpResponse Ok(const Json& value) { return HttpResponse{200, Dump(value)}; }

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

// The request body as a JSON object.
absl::StatusOr<Json> ParseBody(const HttpRequest& request) {
  if (request.body_too_large) {
    return absl::ResourceExhaustedError("request body is larger than 4 MiB");
  }
  Json body = Json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return Invalid("request body is not valid JSON");
  if (!body.is_object()) return Invalid("request body must be a JSON object");
  return body;
}

absl::StatusOr<int64_t> IntField(const Json& body, const char* name, bool required,
                                 int64_t fallback = 0) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    if (required) return Invalid(absl::StrCat(name, " is required"));
    return fallback;
  }
  if (!it->is_number_integer()) return Invalid(absl::StrCat(name, " must be an integer"));
  if (it->is_number_unsigned() &&
      it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return Invalid(absl::StrCat(name, " is out of range"));
  }
  return it->get<int64_t>();
}

absl::StatusOr<std::string> StringField(const Json& body, const char* name, bool required) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    if (required) return Invalid(absl::StrCat(name, " is required"));
    return std::string();
  }
  if (!it->is_string()) return Invalid(absl::StrCat(name, " must be a string"));
  return it->get<std::string>();
}

absl::StatusOr<std::string> BytesField(const Json& body, const char* name, bool required) {
  absl::StatusOr<std::string> text = StringField(body, name, required);
  if (!text.ok()) return text.status();
  std::string bytes;
  if (!absl::Base64Unescape(*text, &bytes)) {
    return Invalid(absl::StrCat(name, " must be base64"));
  }
  return bytes;
}

absl::StatusOr<double> NumberField(const Json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return 0.0;
  if (!it->is_number()) return Invalid(absl::StrCat(name, " must be a number"));
  return it->get<double>();
}

// "keys": [..] (or "key": ".." for one).
absl::StatusOr<std::vector<std::string>> KeysField(const Json& body) {
  std::vector<std::string> keys;
  auto it = body.find("keys");
  if (it == body.end()) {
    absl::StatusOr<std::string> key = StringField(body, "key", true);
    if (!key.ok()) return Invalid("keys is required");
    keys.push_back(*key);
    return keys;
  }
  if (!it->is_array()) return Invalid("keys must be a list of strings");
  for (size_t i = 0; i < it->size(); ++i) {
    if (!(*it)[i].is_string()) return Invalid(absl::StrCat("keys[", i, "] must be a string"));
    keys.push_back((*it)[i].get<std::string>());
  }
  return keys;
}

absl::StatusOr<absl::Duration> WaitField(const Json& body, const char* name, int64_t fallback) {
  absl::StatusOr<int64_t> ms = IntField(body, name, false, fallback);
  if (!ms.ok()) return ms.status();
  if (*ms < 0 || *ms > kMaxWaitMs) {
    return Invalid(absl::StrCat(name, " must be in [0, ", kMaxWaitMs, "], got ", *ms));
  }
  return absl::Milliseconds(*ms);
}

const absl::flat_hash_map<std::string, StoreOp::Kind>& StoreOps() {
  static const auto* ops = new absl::flat_hash_map<std::string, StoreOp::Kind>{
      {"set", StoreOp::Kind::kSet},
      {"get", StoreOp::Kind::kGet},
      {"wait", StoreOp::Kind::kWait},
      {"add", StoreOp::Kind::kAdd},
      {"compare_set", StoreOp::Kind::kCompareSet},
      {"check", StoreOp::Kind::kCheck},
      {"delete", StoreOp::Kind::kDelete},
      {"num_keys", StoreOp::Kind::kNumKeys}};
  return *ops;
}

#define API_ASSIGN(lhs, expr)                          \
  auto lhs##_or = (expr);                              \
  if (!lhs##_or.ok()) return Error(lhs##_or.status()); \
  lhs = *std::move(lhs##_or)

// Reads the fields of `op` its kind takes from `body`.
absl::Status ParseStoreOp(const Json& body, StoreOp* op) {
  absl::StatusOr<int64_t> epoch = IntField(body, "epoch", true);
  if (!epoch.ok()) return epoch.status();
  op->epoch = *epoch;
  using Kind = StoreOp::Kind;
  if (op->kind == Kind::kNumKeys) return absl::OkStatus();
  absl::StatusOr<std::vector<std::string>> keys = KeysField(body);
  if (!keys.ok()) return keys.status();
  op->keys = *std::move(keys);
  const bool one_key = op->kind == Kind::kSet || op->kind == Kind::kAdd ||
                       op->kind == Kind::kCompareSet || op->kind == Kind::kDelete;
  if (one_key && op->keys.size() != 1) return Invalid("key is required (exactly one key)");
  for (size_t i = 0; i < op->keys.size(); ++i) {
    if (op->keys[i].empty()) return Invalid(absl::StrCat("keys[", i, "] must not be empty"));
  }
  switch (op->kind) {
    case Kind::kSet: {
      absl::StatusOr<std::string> value = BytesField(body, "value", true);
      if (!value.ok()) return value.status();
      op->value = *std::move(value);
      break;
    }
    case Kind::kGet:
    case Kind::kWait: {
      if (op->keys.empty()) return Invalid("keys must not be empty");
      absl::StatusOr<absl::Duration> timeout = WaitField(body, "timeout_ms", kDefaultStoreWaitMs);
      if (!timeout.ok()) return timeout.status();
      op->timeout = *timeout;
      break;
    }
    case Kind::kAdd: {
      absl::StatusOr<int64_t> delta = IntField(body, "delta", true);
      if (!delta.ok()) return delta.status();
      op->delta = *delta;
      break;
    }
    case Kind::kCompareSet: {
      absl::StatusOr<std::string> expected = BytesField(body, "expected", false);
      if (!expected.ok()) return expected.status();
      absl::StatusOr<std::string> desired = BytesField(body, "desired", true);
      if (!desired.ok()) return desired.status();
      op->expected = *std::move(expected);
      op->desired = *std::move(desired);
      break;
    }
    default:
      break;
  }
  return absl::OkStatus();
}

Json StoreAnswer(const StoreOp& op, const StoreResult& result) {
  using Kind = StoreOp::Kind;
  switch (op.kind) {
    case Kind::kGet: {
      Json values = Json::array();
      for (const std::string& value : result.values) values.push_back(absl::Base64Escape(value));
      return Json{{"values", std::move(values)}};
    }
    case Kind::kAdd:
      return Json{{"value", result.number}};
    case Kind::kCompareSet:
      return Json{{"value", absl::Base64Escape(result.value)}};
    case Kind::kCheck:
      return Json{{"exists", result.flag}};
    case Kind::kDelete:
      return Json{{"deleted", result.flag}};
    case Kind::kNumKeys:
      return Json{{"num_keys", result.number}};
    default:
      return Json::object();
  }
}

absl::StatusOr<v1::Phase> ParsePhase(const std::string& name, const std::string& field) {
  static const auto* phases =
      new absl::flat_hash_map<std::string, v1::Phase>{{"BOOTSTRAPPING", v1::PHASE_BOOTSTRAPPING},
                                                      {"SPLITTING", v1::PHASE_SPLITTING},
                                                      {"VALIDATING", v1::PHASE_VALIDATING},
                                                      {"READY", v1::PHASE_READY},
                                                      {"FAILED", v1::PHASE_FAILED}};
  auto it = phases->find(absl::AsciiStrToUpper(name));
  if (it == phases->end()) {
    return Invalid(absl::StrCat(field, " must be BOOTSTRAPPING, SPLITTING, VALIDATING, READY or ",
                                "FAILED, got \"", name, "\""));
  }
  return it->second;
}

absl::Status ParseReportGroups(const Json& body, v1::ReportGroupStatusRequest* report) {
  auto it = body.find("groups");
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) return Invalid("groups must be a list");
  if (it->size() > 256) return Invalid("groups must have at most 256 entries");
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& entry = (*it)[i];
    const std::string at = absl::StrCat("groups[", i, "]");
    if (!entry.is_object()) return Invalid(absl::StrCat(at, " must be an object"));
    v1::GroupReport* group = report->add_groups();
    absl::StatusOr<std::string> kind = StringField(entry, "kind", true);
    if (!kind.ok()) return Invalid(absl::StrCat(at, ".kind is required"));
    group->set_kind(*kind);
    absl::StatusOr<std::string> phase = StringField(entry, "phase", false);
    if (!phase.ok()) return Invalid(absl::StrCat(at, ".phase must be a string"));
    v1::Phase group_phase = report->phase();
    if (!phase->empty()) {
      absl::StatusOr<v1::Phase> parsed = ParsePhase(*phase, at + ".phase");
      if (!parsed.ok()) return parsed.status();
      group_phase = *parsed;
    }
    group->set_phase(group_phase);
    absl::StatusOr<double> value = NumberField(entry, "allreduce_value");
    absl::StatusOr<double> latency = NumberField(entry, "latency_us");
    if (!value.ok()) return Invalid(absl::StrCat(at, ".allreduce_value must be a number"));
    if (!latency.ok()) return Invalid(absl::StrCat(at, ".latency_us must be a number"));
    group->set_allreduce_value(*value);
    group->set_latency_us(*latency);
    absl::StatusOr<std::string> error = StringField(entry, "error", false);
    if (!error.ok()) return Invalid(absl::StrCat(at, ".error must be a string"));
    group->set_error(*error);
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ReportGroupStatusRequest> ParseReport(const Json& body) {
  v1::ReportGroupStatusRequest report;
  report.set_layer(v1::REPORT_LAYER_WORKLOAD);
  absl::StatusOr<int64_t> epoch = IntField(body, "epoch", true);
  if (!epoch.ok()) return epoch.status();
  absl::StatusOr<int64_t> rank = IntField(body, "rank", true);
  if (!rank.ok()) return rank.status();
  absl::StatusOr<std::string> phase_name = StringField(body, "phase", true);
  if (!phase_name.ok()) return phase_name.status();
  absl::StatusOr<v1::Phase> phase = ParsePhase(*phase_name, "phase");
  if (!phase.ok()) return phase.status();
  absl::StatusOr<std::string> detail = StringField(body, "detail", false);
  if (!detail.ok()) return detail.status();
  absl::StatusOr<std::string> error = StringField(body, "error", false);
  if (!error.ok()) return error.status();
  if (detail->size() > 1024) return Invalid("detail must be at most 1024 bytes");
  if (error->size() > 4096) return Invalid("error must be at most 4096 bytes");
  report.set_epoch(*epoch);
  report.set_rank(*rank);
  report.set_phase(*phase);
  report.set_detail(*detail);
  report.set_error(*error);
  if (absl::Status groups = ParseReportGroups(body, &report); !groups.ok()) return groups;
  return report;
}

// Query parameter `name` as an integer; `fallback` when absent.
absl::StatusOr<int64_t> QueryInt(const std::string& query, const std::string& name,
                                 int64_t fallback) {
  for (absl::string_view pair : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(pair, '=');
    if (kv.first != name) continue;
    int64_t value = 0;
    if (!absl::SimpleAtoi(kv.second, &value)) {
      return Invalid(absl::StrCat(name, " must be an integer, got \"", kv.second, "\""));
    }
    return value;
  }
  return fallback;
}

}  // namespace

HttpResponse WorkloadApi::Error(const absl::Status& status) {
  Json body = {{"error",
                {{"code", absl::StatusCodeToString(status.code())},
                 {"message", std::string(status.message())}}}};
  return HttpResponse{HttpStatusOf(status.code()), Dump(body)};
}

HttpResponse WorkloadApi::Handle(const HttpRequest& request, const ClientGone& gone) const {
  const std::string& path = request.path;
  auto wrong_method = [&](const char* wanted) {
    HttpResponse response =
        Error(Invalid(absl::StrCat(path, " takes ", wanted, ", not ", request.method)));
    response.status = 405;
    return response;
  };
  if (path == "/v1/plan") {
    if (request.method != "GET") return wrong_method("GET");
    return HandlePlan(request, gone);
  }
  if (path == "/v1/status") {
    if (request.method != "GET") return wrong_method("GET");
    return HttpResponse{200, backend_->StatusDocument()};
  }
  if (path == "/v1/report") {
    if (request.method != "POST") return wrong_method("POST");
    return HandleReport(request);
  }
  if (absl::string_view op = path; absl::ConsumePrefix(&op, "/v1/store/")) {
    if (StoreOps().find(std::string(op)) == StoreOps().end()) {
      return Error(absl::NotFoundError(
          absl::StrCat("unknown store operation \"", op,
                       "\": set, get, wait, add, compare_set, check, delete or num_keys")));
    }
    if (request.method != "POST") return wrong_method("POST");
    return HandleStore(std::string(op), request, gone);
  }
  return Error(absl::NotFoundError(
      absl::StrCat("unknown path ", path, ": /v1/plan, /v1/status, /v1/store/<op>, /v1/report")));
}

HttpResponse WorkloadApi::HandlePlan(const HttpRequest& request, const ClientGone& gone) const {
  int64_t after = 0;
  API_ASSIGN(after, QueryInt(request.query, "after", -1));
  int64_t timeout_ms = 0;
  API_ASSIGN(timeout_ms, QueryInt(request.query, "timeout_ms", kDefaultPlanWaitMs));
  if (timeout_ms < 0 || timeout_ms > kMaxWaitMs) {
    return Error(
        Invalid(absl::StrCat("timeout_ms must be in [0, ", kMaxWaitMs, "], got ", timeout_ms)));
  }
  std::string document;
  API_ASSIGN(document,
             backend_->PlanDocument(after, absl::Now() + absl::Milliseconds(timeout_ms), gone));
  return HttpResponse{200, std::move(document)};
}

HttpResponse WorkloadApi::HandleStore(const std::string& name, const HttpRequest& request,
                                      const ClientGone& gone) const {
  Json body;
  API_ASSIGN(body, ParseBody(request));
  StoreOp op;
  op.kind = StoreOps().at(name);
  if (absl::Status parsed = ParseStoreOp(body, &op); !parsed.ok()) return Error(parsed);
  StoreResult result;
  API_ASSIGN(result, backend_->Store(op, gone));
  return Ok(StoreAnswer(op, result));
}

HttpResponse WorkloadApi::HandleReport(const HttpRequest& request) const {
  Json body;
  API_ASSIGN(body, ParseBody(request));
  v1::ReportGroupStatusRequest report;
  API_ASSIGN(report, ParseReport(body));
  v1::Phase phase = v1::PHASE_UNSPECIFIED;
  API_ASSIGN(phase, backend_->Report(report));
  return Ok(Json{{"cluster_phase", absl::StripPrefix(v1::Phase_Name(phase), "PHASE_")}});
}

}  // namespace splitd::worker
