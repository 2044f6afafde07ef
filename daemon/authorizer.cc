#include "daemon/authorizer.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/bearer_token.h"
#include "common/same_secret.h"
#include "common/sha256.h"
#include "spdlog/spdlog.h"

namespace splitd::daemon {

std::optional<std::string> BearerToken(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kAuthorizationKey);
  if (it == metadata.end()) return std::nullopt;
  const absl::string_view value(it->second.data(), it->second.size());
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return std::string();
  }
  return std::string(absl::StripAsciiWhitespace(value.substr(kScheme.size())));
}

absl::StatusOr<std::unique_ptr<TokenFile>> TokenFile::Load(std::string path, std::string flag,
                                                           const Clock* clock,
                                                           absl::Duration recheck) {
  std::unique_ptr<TokenFile> file(new TokenFile(std::move(path), std::move(flag), clock, recheck));
  absl::MutexLock lock(&file->mu_);
  if (absl::Status status = file->Read(Stamp{}); !status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--", file->flag_, ": ", status.message()));
  }
  file->checked_ = clock->Now();
  return file;
}

absl::Status TokenFile::Read(Stamp stamp) {
  absl::StatusOr<std::vector<std::string>> tokens = ReadTokens(path_);
  if (!tokens.ok()) return tokens.status();
  digests_.clear();
  for (const std::string& token : *tokens) digests_.push_back(Sha256::Hex(token));
  if (stamp == Stamp{}) stamp = StatFile().value_or(Stamp{});
  stamp_ = stamp;
  return absl::OkStatus();
}

std::optional<TokenFile::Stamp> TokenFile::StatFile() const {
  struct stat info;
  if (::stat(path_.c_str(), &info) != 0) return std::nullopt;
  return Stamp{static_cast<int64_t>(info.st_mtim.tv_sec) * 1000000000 + info.st_mtim.tv_nsec,
               static_cast<int64_t>(info.st_size), static_cast<uint64_t>(info.st_ino)};
}

void TokenFile::MaybeReload() {
  const absl::Time now = clock_->Now();
  if (now - checked_ < recheck_) return;
  checked_ = now;
  const std::optional<Stamp> stamp = StatFile();
  if (!stamp.has_value()) {
    spdlog::error("--{}: cannot stat {} ({}); keeping the tokens read before", flag_, path_,
                  std::strerror(errno));
    return;
  }
  if (*stamp == stamp_) return;
  const size_t before = digests_.size();
  if (absl::Status status = Read(*stamp); !status.ok()) {
    spdlog::error("--{}: {}; keeping the tokens read before", flag_, std::string(status.message()));
    stamp_ = *stamp;  // logged once per change of the file
    return;
  }
  spdlog::info("--{}: reloaded {} ({} tokens, {} before)", flag_, path_, digests_.size(), before);
}

bool TokenFile::Contains(const std::string& token) {
  const std::string digest = Sha256::Hex(token);
  absl::MutexLock lock(&mu_);
  MaybeReload();
  bool found = false;
  for (const std::string& known : digests_) found |= SameSecret(known, digest);
  return found;
}

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::Create(const Options& options,
                                                               const Clock* clock,
                                                               const Coordinator* coordinator) {
  std::unique_ptr<Authorizer> authorizer(new Authorizer());
  authorizer->coordinator_ = coordinator;
  authorizer->may_serve_ = options.may_serve;
  if (options.admin_token_file.empty()) {
    if (!options.observer_token_file.empty()) {
      return absl::InvalidArgumentError(
          "--observer_token_file needs --admin_token_file: without an admin token every caller "
          "may already read and change everything");
    }
    return authorizer;
  }
  auto admin =
      TokenFile::Load(options.admin_token_file, "admin_token_file", clock, options.recheck);
  if (!admin.ok()) return admin.status();
  authorizer->admin_ = *std::move(admin);
  if (!options.observer_token_file.empty()) {
    auto observer =
        TokenFile::Load(options.observer_token_file, "observer_token_file", clock, options.recheck);
    if (!observer.ok()) return observer.status();
    authorizer->observer_ = *std::move(observer);
  }
  return authorizer;
}

ControlRole Authorizer::RoleOf(const std::string& token) const {
  if (admin_ == nullptr || token.empty()) return ControlRole::kNone;
  if (admin_->Contains(token)) return ControlRole::kAdmin;
  if (observer_ != nullptr && observer_->Contains(token)) return ControlRole::kObserver;
  return ControlRole::kNone;
}

namespace {

constexpr absl::string_view kControlService = "splitd.v1.ControlService";
constexpr absl::string_view kAgentService = "splitd.v1.AgentService";

struct Rule {
  absl::string_view service;
  absl::string_view method;
  Scope scope;
  bool dry_run_reads = false;  // a dry run changes nothing: kControlRead
};

// Every method of both services (docs/security.md, "Tokens").
constexpr Rule kRules[] = {
    {kControlService, "ApplyTopology", Scope::kControlChange},
    {kControlService, "DeleteCluster", Scope::kControlChange},
    {kControlService, "Reconfigure", Scope::kControlChange, /*dry_run_reads=*/true},
    {kControlService, "GetCluster", Scope::kControlRead},
    {kControlService, "ListClusters", Scope::kControlRead},
    {kControlService, "GetPlan", Scope::kControlRead},
    {kControlService, "GetStatus", Scope::kControlRead},
    {kControlService, "WatchEvents", Scope::kControlRead},
    {kAgentService, "Register", Scope::kJoin},
    {kAgentService, "WatchPlan", Scope::kSession},
    {kAgentService, "Heartbeat", Scope::kSession},
    {kAgentService, "ReportGroupStatus", Scope::kSession},
    {kAgentService, "KvSet", Scope::kSession},
    {kAgentService, "KvGet", Scope::kSession},
    {kAgentService, "KvAdd", Scope::kSession},
    {kAgentService, "KvCompareSet", Scope::kSession},
    {kAgentService, "KvCheck", Scope::kSession},
    {kAgentService, "KvDelete", Scope::kSession},
};

// "ControlService.Reconfigure": how messages name a method, without the package.
std::string MethodName(absl::string_view service, absl::string_view method) {
  return absl::StrCat(service.substr(service.rfind('.') + 1), ".", method);
}

}  // namespace

absl::StatusOr<Scope> Authorizer::ScopeOf(absl::string_view service, absl::string_view method,
                                          bool dry_run) {
  for (const Rule& rule : kRules) {
    if (rule.service != service || rule.method != method) continue;
    if (dry_run && rule.dry_run_reads) return Scope::kControlRead;
    return rule.scope;
  }
  return absl::PermissionDeniedError(
      absl::StrCat("no authorization rule for ", MethodName(service, method)));
}

absl::Status Authorizer::Authorize(const Call& call) const {
  if (may_serve_) {
    if (absl::Status serving = may_serve_(); !serving.ok()) return serving;
  }
  const absl::StatusOr<Scope> scope = ScopeOf(call.service, call.method, call.dry_run);
  if (!scope.ok()) return scope.status();
  switch (*scope) {
    case Scope::kControlRead:
      return AuthorizeControl(call, /*changes_state=*/false);
    case Scope::kControlChange:
      return AuthorizeControl(call, /*changes_state=*/true);
    case Scope::kJoin:
      return AuthorizeJoin(call);
    case Scope::kSession:
      // The Coordinator checks the request's MemberCredentials with the call itself.
      return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("no authorization rule for ", MethodName(call.service, call.method)));
}

absl::Status Authorizer::AuthorizeControl(const Call& call, bool changes_state) const {
  if (!enabled()) return absl::OkStatus();
  const std::string method = MethodName(call.service, call.method);
  if (!call.token.has_value()) {
    return absl::UnauthenticatedError(absl::StrCat(
        method, " needs a token: \"authorization: Bearer <token>\" (splitctl --token_file)"));
  }
  switch (RoleOf(*call.token)) {
    case ControlRole::kAdmin:
      return absl::OkStatus();
    case ControlRole::kObserver:
      if (!changes_state) return absl::OkStatus();
      return absl::PermissionDeniedError(absl::StrCat(
          method, " changes state; the observer token may only read (use an admin token)"));
    case ControlRole::kNone:
      break;
  }
  if (coordinator_ != nullptr && coordinator_->IsAgentToken(*call.token)) {
    return absl::PermissionDeniedError(
        absl::StrCat(method, " refuses agent tokens (join or session); use a control token"));
  }
  return absl::UnauthenticatedError(absl::StrCat("the token is not valid for ", method));
}

absl::Status Authorizer::AuthorizeJoin(const Call& call) const {
  if (coordinator_ == nullptr) {
    return absl::PermissionDeniedError(absl::StrCat(
        MethodName(call.service, call.method), " is refused: no Coordinator holds join tokens"));
  }
  const absl::StatusOr<std::string> required = coordinator_->JoinTokenDigest(call.cluster);
  if (!required.ok()) return required.status();
  if (required->empty()) return absl::OkStatus();
  if (!call.token.has_value()) {
    return absl::UnauthenticatedError(
        absl::StrCat("cluster \"", call.cluster,
                     "\" needs its join token: \"authorization: Bearer <token>\" (splitd-agent "
                     "--join_token_file)"));
  }
  const std::string& token = *call.token;
  if (!token.empty() && SameSecret(*required, Sha256::Hex(token))) return absl::OkStatus();
  // A valid token of another scope: a control token, another cluster's join token, a session.
  if (RoleOf(token) != ControlRole::kNone) {
    return absl::PermissionDeniedError(
        "Register refuses control tokens; agents present their cluster's join token");
  }
  if (coordinator_->IsAgentToken(token)) {
    return absl::PermissionDeniedError(
        absl::StrCat("the token is not cluster \"", call.cluster,
                     "\"'s join token (it is another cluster's join token or a member's session)"));
  }
  return absl::UnauthenticatedError(
      absl::StrCat("the join token is not valid for cluster \"", call.cluster, "\""));
}

}  // namespace splitd::daemon
