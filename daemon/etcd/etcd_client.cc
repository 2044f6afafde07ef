#include "daemon/etcd/etcd_client.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace splitd::etcd {
namespace {

absl::StatusOr<std::string> ReadPemFile(const char* flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  if (!in || contents.str().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", path, " cannot be read"));
  }
  return contents.str();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials(const EtcdOptions& options) {
  if (options.ca_file.empty() && options.cert_file.empty() && options.key_file.empty()) {
    return grpc::InsecureChannelCredentials();
  }
  if (options.cert_file.empty() != options.key_file.empty()) {
    return absl::InvalidArgumentError("--etcd_cert and --etcd_key go together");
  }
  grpc::SslCredentialsOptions ssl;
  if (!options.ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPemFile("etcd_ca", options.ca_file);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
  }
  if (!options.cert_file.empty()) {
    absl::StatusOr<std::string> cert = ReadPemFile("etcd_cert", options.cert_file);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPemFile("etcd_key", options.key_file);
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  return grpc::SslCredentials(ssl);
}

// etcd answers a token it no longer knows with this (after its restart, or the token's TTL).
bool TokenRefused(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
         status.error_message().find("invalid auth token") != std::string::npos;
}

}  // namespace

std::string PrefixEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    unsigned char last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(const EtcdOptions& options) {
  if (options.endpoints.empty()) {
    return absl::InvalidArgumentError("--etcd_endpoints names no endpoint");
  }
  for (const std::string& endpoint : options.endpoints) {
    if (endpoint.empty() || endpoint.rfind(':') == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--etcd_endpoints: \"", endpoint, "\" is not HOST:PORT"));
    }
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials = Credentials(options);
  if (!credentials.ok()) return credentials.status();
  std::unique_ptr<EtcdClient> client(new EtcdClient(options));
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  // etcd closes a connection pinged more often than every 5 s.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 3000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  for (const std::string& endpoint : options.endpoints) {
    Endpoint e;
    e.channel = grpc::CreateCustomChannel(endpoint, *credentials, args);
    e.kv = etcdserverpb::KV::NewStub(e.channel);
    e.lease = etcdserverpb::Lease::NewStub(e.channel);
    e.watch = etcdserverpb::Watch::NewStub(e.channel);
    e.auth = etcdserverpb::Auth::NewStub(e.channel);
    client->endpoints_.push_back(std::move(e));
  }
  return client;
}

EtcdClient::Endpoint& EtcdClient::Current() {
  return endpoints_[current_.load() % endpoints_.size()];
}

void EtcdClient::EndpointFailed() { current_.fetch_add(1); }

void EtcdClient::Prepare(grpc::ClientContext* context, bool deadline) {
  context->AddMetadata("hasleader", "true");
  if (deadline) {
    context->set_deadline(std::chrono::system_clock::now() +
                          absl::ToChronoMilliseconds(options_.call_timeout));
  }
  absl::MutexLock lock(&token_mu_);
  if (!token_.empty()) context->AddMetadata("token", token_);
}

void EtcdClient::PrepareStream(grpc::ClientContext* context) { Prepare(context, false); }

etcdserverpb::Lease::Stub* EtcdClient::lease_stub() { return Current().lease.get(); }
etcdserverpb::Watch::Stub* EtcdClient::watch_stub() { return Current().watch.get(); }

absl::Status EtcdClient::Authenticate(Endpoint& endpoint) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoMilliseconds(options_.call_timeout));
  etcdserverpb::AuthenticateRequest request;
  request.set_name(options_.user);
  request.set_password(options_.password);
  etcdserverpb::AuthenticateResponse response;
  grpc::Status status = endpoint.auth->Authenticate(&context, request, &response);
  if (!status.ok()) {
    absl::Status error = FromGrpcStatus(status);
    return absl::Status(error.code(), absl::StrCat("etcd authentication as --etcd_user ",
                                                   options_.user, ": ", error.message()));
  }
  absl::MutexLock lock(&token_mu_);
  token_ = response.token();
  return absl::OkStatus();
}

template <typename Call>
absl::Status EtcdClient::Invoke(bool retry, Call call) {
  const size_t tries = retry ? endpoints_.size() : 1;
  grpc::Status status;
  bool reauthenticated = false;
  for (size_t attempt = 0; attempt < tries; ++attempt) {
    Endpoint& endpoint = Current();
    bool need_token = false;
    if (!options_.user.empty()) {
      absl::MutexLock lock(&token_mu_);
      need_token = token_.empty();
    }
    if (need_token) {
      absl::Status authenticated = Authenticate(endpoint);
      if (!authenticated.ok()) {
        if (authenticated.code() != absl::StatusCode::kUnavailable) return authenticated;
        EndpointFailed();
        status = ToGrpcStatus(authenticated);
        continue;
      }
    }
    status = call(endpoint);
    if (status.ok()) return absl::OkStatus();
    if (TokenRefused(status) && !options_.user.empty() && !reauthenticated) {
      // etcd checks the token before it proposes anything: the call did not apply.
      {
        absl::MutexLock lock(&token_mu_);
        token_.clear();
      }
      reauthenticated = true;
      --attempt;
      continue;
    }
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE) break;
    EndpointFailed();
  }
  absl::Status error = FromGrpcStatus(status);
  return absl::Status(error.code(), absl::StrCat("etcd: ", error.message()));
}

absl::StatusOr<etcdserverpb::RangeResponse> EtcdClient::Range(
    const etcdserverpb::RangeRequest& request) {
  etcdserverpb::RangeResponse response;
  absl::Status status = Invoke(true, [&](Endpoint& endpoint) {
    grpc::ClientContext context;
    Prepare(&context, true);
    response.Clear();
    return endpoint.kv->Range(&context, request, &response);
  });
  if (!status.ok()) return status;
  return response;
}

absl::StatusOr<PrefixRead> EtcdClient::ReadPrefix(const std::string& prefix, int64_t page_keys) {
  PrefixRead read;
  etcdserverpb::RangeRequest request;
  request.set_key(prefix);
  request.set_range_end(PrefixEnd(prefix));
  request.set_limit(page_keys);
  while (true) {
    absl::StatusOr<etcdserverpb::RangeResponse> page = Range(request);
    if (!page.ok()) return page.status();
    if (read.revision == 0) {
      read.revision = page->header().revision();
      request.set_revision(read.revision);
    }
    for (mvccpb::KeyValue& kv : *page->mutable_kvs()) read.kvs.push_back(std::move(kv));
    if (!page->more() || read.kvs.empty()) return read;
    request.set_key(read.kvs.back().key() + std::string(1, '\0'));
  }
}

absl::StatusOr<etcdserverpb::TxnResponse> EtcdClient::Txn(const etcdserverpb::TxnRequest& request) {
  etcdserverpb::TxnResponse response;
  absl::Status status = Invoke(false, [&](Endpoint& endpoint) {
    grpc::ClientContext context;
    Prepare(&context, true);
    return endpoint.kv->Txn(&context, request, &response);
  });
  if (!status.ok()) return status;
  return response;
}

absl::StatusOr<etcdserverpb::CompactionResponse> EtcdClient::Compact(int64_t revision) {
  etcdserverpb::CompactionRequest request;
  request.set_revision(revision);
  etcdserverpb::CompactionResponse response;
  absl::Status status = Invoke(true, [&](Endpoint& endpoint) {
    grpc::ClientContext context;
    Prepare(&context, true);
    return endpoint.kv->Compact(&context, request, &response);
  });
  if (!status.ok()) return status;
  return response;
}

absl::StatusOr<etcdserverpb::LeaseGrantResponse> EtcdClient::LeaseGrant(int64_t ttl_seconds) {
  etcdserverpb::LeaseGrantRequest request;
  request.set_ttl(ttl_seconds);
  etcdserverpb::LeaseGrantResponse response;
  // A grant that was lost costs only an unused lease, which runs out on its own.
  absl::Status status = Invoke(true, [&](Endpoint& endpoint) {
    grpc::ClientContext context;
    Prepare(&context, true);
    return endpoint.lease->LeaseGrant(&context, request, &response);
  });
  if (!status.ok()) return status;
  if (!response.error().empty()) {
    return absl::UnavailableError(absl::StrCat("etcd: lease grant: ", response.error()));
  }
  return response;
}

absl::Status EtcdClient::LeaseRevoke(int64_t lease) {
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(lease);
  etcdserverpb::LeaseRevokeResponse response;
  return Invoke(true, [&](Endpoint& endpoint) {
    grpc::ClientContext context;
    Prepare(&context, true);
    return endpoint.lease->LeaseRevoke(&context, request, &response);
  });
}

}  // namespace splitd::etcd
