#ifndef SPLITD_COMMON_TLS_CREDENTIALS_H_
#define SPLITD_COMMON_TLS_CREDENTIALS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace splitd {

// True when the host of `address` ("HOST:PORT", "[V6]:PORT", or a bare host) is loopback:
// 127.0.0.0/8, ::1 or "localhost"; also "unix:" paths. Anything else, including 0.0.0.0, [::] and
// names that would need resolving, is not.
bool IsLoopbackAddress(absl::string_view address);

// The daemon's transport security, as its flags give it.
struct ServerTlsOptions {
  std::string cert_file;       // --tls_cert: PEM certificate chain
  std::string key_file;        // --tls_key: PEM private key (unencrypted)
  std::string client_ca_file;  // --tls_client_ca: PEM CA bundle; set: client certificates required
  bool plaintext = false;      // --plaintext
};

struct ServerSecurity {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  bool plaintext = true;
  std::string description;  // for the log: "TLS", "mutual TLS", "plaintext"
};

// Checks the flags against each other and against `listen`, reads and validates the files, and
// builds the credentials. Without --tls_cert/--tls_key, plaintext is allowed on a loopback
// `listen` address and needs --plaintext elsewhere. Errors are INVALID_ARGUMENT naming the flag
// (and file) at fault.
absl::StatusOr<ServerSecurity> MakeServerSecurity(const ServerTlsOptions& options,
                                                  absl::string_view listen);

// How a client (splitd-agent, splitctl) reaches the daemon, as its flags give it.
struct ClientTlsOptions {
  bool plaintext = false;   // --plaintext
  bool tls = false;         // --tls: TLS even to a loopback address
  std::string ca_file;      // --tls_ca: CA bundle the daemon's certificate must chain to
  std::string cert_file;    // --tls_cert: client certificate chain (mutual TLS)
  std::string key_file;     // --tls_key: its private key
  std::string server_name;  // --tls_server_name: name to verify instead of the address's host

  // Any option that asks for TLS.
  bool AsksForTls() const;
};

// Fills in what the flags left open from the environment: unless --plaintext is given, each
// empty file or name from $SPLITD_TLS_CA, $SPLITD_TLS_CERT, $SPLITD_TLS_KEY and
// $SPLITD_TLS_SERVER_NAME; then, when nothing asks for TLS, $SPLITD_PLAINTEXT=1 (or "true")
// stands for --plaintext.
ClientTlsOptions WithEnvironmentDefaults(ClientTlsOptions options);

struct ClientSecurity {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  bool plaintext = true;
};

// Resolves plaintext or TLS for `address`: --plaintext is plaintext (and conflicts with every TLS
// option); any TLS option is TLS; with neither, a loopback address is plaintext and any other is
// TLS verified against the system's roots. Reads and validates the files. When TLS and
// options.server_name is set, `channel_args` gets the target name override. Errors are
// INVALID_ARGUMENT naming the flag (and file) at fault.
absl::StatusOr<ClientSecurity> MakeClientSecurity(const ClientTlsOptions& options,
                                                  absl::string_view address,
                                                  grpc::ChannelArguments* channel_args);

}  // namespace splitd

#endif  // SPLITD_COMMON_TLS_CREDENTIALS_H_
