#ifndef SPLITD_COMMON_BEARER_TOKEN_H_
#define SPLITD_COMMON_BEARER_TOKEN_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/same_secret.h"
#include "grpcpp/channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/client_interceptor.h"

namespace splitd {

// Bearer tokens: the secrets that authorize calls to the daemon. A token travels in the call's
// "authorization" metadata as "Bearer <token>"; the daemon compares digests, never logs a token,
// and keeps only the SHA-256 of a cluster's join token.

// The metadata key and scheme.
inline constexpr char kAuthorizationKey[] = "authorization";
inline constexpr char kBearerPrefix[] = "Bearer ";

// Shortest and longest token accepted.
inline constexpr size_t kMinTokenLength = 16;
inline constexpr size_t kMaxTokenLength = 1024;

// OK when `token` is kMinTokenLength..kMaxTokenLength printable ASCII characters without spaces;
// otherwise INVALID_ARGUMENT starting with `what` (the field or file at fault) and never quoting
// the token.
absl::Status CheckTokenText(absl::string_view token, absl::string_view what);

// The tokens of a token file: one per line; blank lines and lines starting with '#' are skipped,
// surrounding whitespace is trimmed. Errors (none, or one malformed) are INVALID_ARGUMENT naming
// `path` and the line number.
absl::StatusOr<std::vector<std::string>> ParseTokenFile(absl::string_view contents,
                                                        absl::string_view path);

// Reads and parses a token file (ParseTokenFile); INVALID_ARGUMENT naming `path` when it cannot
// be read.
absl::StatusOr<std::vector<std::string>> ReadTokens(const std::string& path);

// Reads a file holding exactly one token (a client's --token_file or --join_token_file).
// Errors are INVALID_ARGUMENT naming `flag` and the file.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path, absl::string_view flag);

// A channel whose every call carries "authorization: Bearer <token>"; without a token, a plain
// channel. Works over TLS and plaintext alike (loopback channels cannot carry gRPC's call
// credentials, so the header is added by a client interceptor).
// A client's token: from the file `path` (its flag), else from the file named by the environment
// variable `env`; empty when neither is given. Errors as ReadTokenFile.
absl::StatusOr<std::string> ReadClientToken(std::string path, const char* env,
                                            absl::string_view flag);

// `more` interceptors run after the token's.
std::shared_ptr<grpc::Channel> CreateChannelWithToken(
    const std::string& target, const std::shared_ptr<grpc::ChannelCredentials>& credentials,
    const grpc::ChannelArguments& args, const std::string& token,
    std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> more = {});

}  // namespace splitd

#endif  // SPLITD_COMMON_BEARER_TOKEN_H_
