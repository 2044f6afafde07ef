#include "daemon/authorizer.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/bearer_token.h"
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
  std::unique_ptr<TokenFile> file(
      new TokenFile(std::move(path), std::move(flag), clock, recheck));
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
                                                               const Clock* clock) {
  std::unique_ptr<Authorizer> authorizer(new Authorizer());
  if (options.admin_token_file.empty()) {
    if (!options.observer_token_file.empty()) {
      return absl::InvalidArgumentError(
          "--observer_token_file needs --admin_token_file: without an admin token every caller "
          "may already read and change everything");
    }
    return authorizer;
  }
  auto admin = TokenFile::Load(options.admin_token_file, "admin_token_file", clock,
                               options.recheck);
  if (!admin.ok()) return admin.status();
  authorizer->admin_ = *std::move(admin);
  if (!options.observer_token_file.empty()) {
    auto observer = TokenFile::Load(options.observer_token_file, "observer_token_file", clock,
                                    options.recheck);
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

}  // namespace splitd::daemon
