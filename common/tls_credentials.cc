#include "common/tls_credentials.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace splitd {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;

// Never prompts on a terminal for the pass phrase of an encrypted key.
int NoPassphrase(char*, int, int, void*) { return 0; }

std::string FlagFile(absl::string_view flag, absl::string_view path) {
  return absl::StrCat(flag, " ", path);
}

absl::StatusOr<std::string> ReadPem(absl::string_view flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(FlagFile(flag, path), ": cannot read: ", std::strerror(errno)));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat(FlagFile(flag, path), ": cannot read: ", std::strerror(errno)));
  }
  std::string contents = buffer.str();
  if (contents.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(FlagFile(flag, path), ": file is empty"));
  }
  return contents;
}

BioPtr MemoryBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The first certificate of `pem`, which must hold at least one.
absl::StatusOr<X509Ptr> FirstCertificate(absl::string_view flag, const std::string& path,
                                         const std::string& pem) {
  BioPtr bio = MemoryBio(pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr));
  ERR_clear_error();
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(FlagFile(flag, path), ": no PEM certificate in it"));
  }
  return cert;
}

absl::StatusOr<KeyPtr> PrivateKey(absl::string_view flag, const std::string& path,
                                  const std::string& pem) {
  BioPtr bio = MemoryBio(pem);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(FlagFile(flag, path), ": no unencrypted PEM private key in it"));
  }
  return key;
}

struct KeyPair {
  std::string cert_pem;
  std::string key_pem;
};

// Reads a certificate chain and its key and checks that they belong together.
absl::StatusOr<KeyPair> ReadKeyPair(const std::string& cert_file, const std::string& key_file) {
  KeyPair pair;
  ASSIGN_OR_RETURN(pair.cert_pem, ReadPem("--tls_cert", cert_file));
  ASSIGN_OR_RETURN(pair.key_pem, ReadPem("--tls_key", key_file));
  ASSIGN_OR_RETURN(X509Ptr cert, FirstCertificate("--tls_cert", cert_file, pair.cert_pem));
  ASSIGN_OR_RETURN(KeyPtr key, PrivateKey("--tls_key", key_file, pair.key_pem));
  const int matches = X509_check_private_key(cert.get(), key.get());
  ERR_clear_error();
  if (matches != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(FlagFile("--tls_key", key_file),
                     ": does not match the certificate in --tls_cert ", cert_file));
  }
  return pair;
}

absl::StatusOr<std::string> ReadCaBundle(absl::string_view flag, const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, ReadPem(flag, path));
  ASSIGN_OR_RETURN(X509Ptr cert, FirstCertificate(flag, path, pem));
  return pem;
}

absl::Status NeedsBoth(const std::string& cert_file, const std::string& key_file) {
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError(cert_file.empty() ? "--tls_key needs --tls_cert"
                                                        : "--tls_cert needs --tls_key");
  }
  return absl::OkStatus();
}

}  // namespace

bool IsLoopbackAddress(absl::string_view address) {
  if (absl::StartsWith(address, "unix:") || absl::StartsWith(address, "unix-abstract:")) {
    return true;
  }
  std::string host(address);
  if (absl::StartsWith(host, "[")) {
    const size_t close = host.find(']');
    if (close == std::string::npos) return false;
    host = host.substr(1, close - 1);
  } else if (std::count(host.begin(), host.end(), ':') == 1) {
    host = host.substr(0, host.find(':'));
  }
  if (host == "localhost") return true;
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return std::memcmp(&v6, &in6addr_loopback, sizeof(v6)) == 0;
  }
  return false;
}

absl::StatusOr<ServerSecurity> MakeServerSecurity(const ServerTlsOptions& options,
                                                  absl::string_view listen) {
  RETURN_IF_ERROR(NeedsBoth(options.cert_file, options.key_file));
  const bool tls = !options.cert_file.empty();
  if (!tls && !options.client_ca_file.empty()) {
    return absl::InvalidArgumentError("--tls_client_ca needs --tls_cert and --tls_key");
  }
  if (tls && options.plaintext) {
    return absl::InvalidArgumentError("--plaintext conflicts with --tls_cert/--tls_key");
  }
  ServerSecurity security;
  if (!tls) {
    if (!options.plaintext && !IsLoopbackAddress(listen)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--listen ", listen,
                       " is not a loopback address: give --tls_cert and --tls_key to serve TLS, or "
                       "--plaintext to serve without it"));
    }
    security.credentials = grpc::InsecureServerCredentials();
    security.plaintext = true;
    security.description = "plaintext";
    return security;
  }
  ASSIGN_OR_RETURN(KeyPair pair, ReadKeyPair(options.cert_file, options.key_file));
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ssl.pem_key_cert_pairs.push_back({pair.key_pem, pair.cert_pem});
  security.description = "TLS";
  if (!options.client_ca_file.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadCaBundle("--tls_client_ca", options.client_ca_file));
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    security.description = "mutual TLS (client certificates required)";
  }
  security.credentials = grpc::SslServerCredentials(ssl);
  security.plaintext = false;
  return security;
}

bool ClientTlsOptions::AsksForTls() const {
  return tls || !ca_file.empty() || !cert_file.empty() || !key_file.empty() || !server_name.empty();
}

ClientTlsOptions WithEnvironmentDefaults(ClientTlsOptions options) {
  if (options.plaintext) return options;
  auto fill = [](std::string* value, const char* name) {
    const char* env = std::getenv(name);
    if (value->empty() && env != nullptr) *value = env;
  };
  fill(&options.ca_file, "SPLITD_TLS_CA");
  fill(&options.cert_file, "SPLITD_TLS_CERT");
  fill(&options.key_file, "SPLITD_TLS_KEY");
  fill(&options.server_name, "SPLITD_TLS_SERVER_NAME");
  const char* plaintext = std::getenv("SPLITD_PLAINTEXT");
  if (!options.AsksForTls() && plaintext != nullptr &&
      (std::string(plaintext) == "1" || std::string(plaintext) == "true")) {
    options.plaintext = true;
  }
  return options;
}

absl::StatusOr<ClientSecurity> MakeClientSecurity(const ClientTlsOptions& options,
                                                  absl::string_view address,
                                                  grpc::ChannelArguments* channel_args) {
  if (options.plaintext && options.AsksForTls()) {
    std::vector<std::string> tls_flags;
    if (options.tls) tls_flags.push_back("--tls");
    if (!options.ca_file.empty()) tls_flags.push_back("--tls_ca");
    if (!options.cert_file.empty()) tls_flags.push_back("--tls_cert");
    if (!options.key_file.empty()) tls_flags.push_back("--tls_key");
    if (!options.server_name.empty()) tls_flags.push_back("--tls_server_name");
    return absl::InvalidArgumentError(
        absl::StrCat("--plaintext conflicts with ", absl::StrJoin(tls_flags, ", ")));
  }
  RETURN_IF_ERROR(NeedsBoth(options.cert_file, options.key_file));
  ClientSecurity security;
  if (options.plaintext || (!options.AsksForTls() && IsLoopbackAddress(address))) {
    security.credentials = grpc::InsecureChannelCredentials();
    security.plaintext = true;
    return security;
  }
  grpc::SslCredentialsOptions ssl;  // empty pem_root_certs: the system's roots
  if (!options.ca_file.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadCaBundle("--tls_ca", options.ca_file));
  }
  if (!options.cert_file.empty()) {
    ASSIGN_OR_RETURN(KeyPair pair, ReadKeyPair(options.cert_file, options.key_file));
    ssl.pem_cert_chain = pair.cert_pem;
    ssl.pem_private_key = pair.key_pem;
  }
  if (!options.server_name.empty()) channel_args->SetSslTargetNameOverride(options.server_name);
  security.credentials = grpc::SslCredentials(ssl);
  security.plaintext = false;
  return security;
}

}  // namespace splitd
