#include "common/daemon_replicas.h"

#include <arpa/inet.h>

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "grpc/grpc.h"
#include "grpcpp/server_builder.h"

namespace splitd {
namespace {

using grpc::experimental::InterceptionHookPoints;

class TermCheck final : public grpc::experimental::Interceptor {
 public:
  explicit TermCheck(TermWatermark* watermark) : watermark_(watermark) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      term_ = TermOf(*methods->GetRecvInitialMetadata());
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_STATUS)) {
      if (!watermark_->Admit(term_)) {
        *methods->GetRecvStatus() =
            grpc::Status(grpc::StatusCode::UNAVAILABLE,
                         absl::StrCat("answer of splitd term ", term_, " after term ",
                                      watermark_->highest(), ": a replica that no longer leads"));
      }
    }
    methods->Proceed();
  }

 private:
  TermWatermark* const watermark_;
  int64_t term_ = 0;
};

class TermCheckFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit TermCheckFactory(std::shared_ptr<TermWatermark> watermark)
      : watermark_(std::move(watermark)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new TermCheck(watermark_.get());
  }

 private:
  std::shared_ptr<TermWatermark> watermark_;
};

class TermStamp final : public grpc::experimental::Interceptor {
 public:
  explicit TermStamp(const std::string* term) : term_(term) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace(kTermMetadata, *term_);
    }
    methods->Proceed();
  }

 private:
  const std::string* term_;
};

class TermStampFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit TermStampFactory(int64_t term) : term_(absl::StrCat(term)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo*) override {
    return new TermStamp(&term_);
  }

 private:
  const std::string term_;
};

}  // namespace

bool TermWatermark::Admit(int64_t term) {
  if (term <= 0) return true;
  int64_t seen = highest_.load();
  while (term > seen) {
    if (highest_.compare_exchange_weak(seen, term)) return true;
  }
  return term == seen;
}

int64_t TermOf(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
  auto found = metadata.find(kTermMetadata);
  if (found == metadata.end()) return 0;
  int64_t term = 0;
  if (!absl::SimpleAtoi(absl::string_view(found->second.data(), found->second.size()), &term)) {
    return 0;
  }
  return term;
}

std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface> MakeTermCheckFactory(
    std::shared_ptr<TermWatermark> watermark) {
  return std::make_unique<TermCheckFactory>(std::move(watermark));
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeTermStampFactory(
    int64_t term) {
  return std::make_unique<TermStampFactory>(term);
}

absl::StatusOr<bool> ReplicatedTarget(absl::string_view address, std::string* target,
                                      grpc::ChannelArguments* args) {
  const bool several = absl::StrContains(address, ',');
  const bool dns = absl::StartsWith(address, "dns:");
  if (!several && !dns) {
    *target = std::string(address);
    return false;
  }
  if (several) {
    std::vector<std::string> parts = absl::StrSplit(address, ',', absl::SkipWhitespace());
    bool v6 = false;
    for (std::string& part : parts) {
      part = std::string(absl::StripAsciiWhitespace(part));
      const size_t colon = part.rfind(':');
      std::string host = colon == std::string::npos ? part : part.substr(0, colon);
      if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) {
        host = host.substr(1, host.size() - 2);
        v6 = true;
      }
      in6_addr ip{};
      if (colon == std::string::npos ||
          inet_pton(v6 ? AF_INET6 : AF_INET, host.c_str(), &ip) != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("daemon address \"", part,
                         "\" in a list must be IP:PORT; for names give one "
                         "dns:///NAME:PORT that resolves to every replica"));
      }
    }
    *target = absl::StrCat(v6 ? "ipv6:" : "ipv4:", absl::StrJoin(parts, ","));
  } else {
    *target = std::string(address);
  }
  // A replica that stops answering (a stopped process, a cut-off host) must drop out of the
  // pick within seconds, not at TCP's pace: ping every 2 s, give up after 1 s without an answer.
  args->SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 2000);
  args->SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 1000);
  args->SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args->SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args->SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args->SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args->SetServiceConfigJSON(
      absl::StrCat(R"({"loadBalancingConfig":[{"round_robin":{}}],)",
                   R"("healthCheckConfig":{"serviceName":")", kLeaderHealthService, R"("},)",
                   R"("methodConfig":[{"name":[{"service":"splitd.v1.AgentService"},)",
                   R"({"service":"splitd.v1.ControlService"}],)",
                   R"("retryPolicy":{"maxAttempts":5,"initialBackoff":"0.2s","maxBackoff":"1s",)",
                   R"("backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}}]})"));
  return true;
}

std::string FirstAddress(absl::string_view address) {
  if (absl::ConsumePrefix(&address, "dns:")) {
    // dns:///name:port, or dns://authority/name:port.
    if (absl::ConsumePrefix(&address, "//")) address = address.substr(address.find('/') + 1);
  }
  return std::string(address.substr(0, address.find(',')));
}

void PermitClientPings(grpc::ServerBuilder* builder) {
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
}

}  // namespace splitd
