#ifndef SPLITD_COMMON_DAEMON_REPLICAS_H_
#define SPLITD_COMMON_DAEMON_REPLICAS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/client_interceptor.h"
#include "grpcpp/support/server_interceptor.h"

namespace splitd {

// What replicated daemons (--etcd_endpoints) tell clients, and what clients do with it.
//
// The leading replica sends its term (its leader key's create revision in etcd) as initial
// metadata with every answer; a follower answers UNAVAILABLE with the leader's address.
inline constexpr char kTermMetadata[] = "splitd-term";
inline constexpr char kLeaderMetadata[] = "splitd-leader";
// The health service that is SERVING only on the replica that leads (a daemon without replicas
// always leads); "" is the process's liveness.
inline constexpr char kLeaderHealthService[] = "splitd.v1.Leader";

// The highest term a client has seen. Thread-safe.
class TermWatermark {
 public:
  // False for an answer of a term below the highest seen (a deposed leader's); otherwise
  // raises the mark to `term`. Answers without a term (0: a daemon without replicas) pass.
  bool Admit(int64_t term);
  int64_t highest() const { return highest_.load(); }

 private:
  std::atomic<int64_t> highest_{0};
};

// Parses the term of an answer's initial metadata (0 when absent or malformed).
int64_t TermOf(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata);

// A client interceptor that turns an answer of a lower term than `watermark` has seen into
// UNAVAILABLE, so the caller treats it as it treats a daemon it cannot reach.
std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface> MakeTermCheckFactory(
    std::shared_ptr<TermWatermark> watermark);

// A server interceptor that sends `term` as initial metadata with every answer.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeTermStampFactory(
    int64_t term);

// The gRPC target for a client's daemon address: "host:port", several "a:port,b:port" (the
// replicas), or any gRPC target ("dns:///splitd:7070", which may resolve to every replica). For
// several addresses or a dns: target, `args` gets a service config that sends every call to the
// replica whose kLeaderHealthService is SERVING (round_robin with client-side health checking)
// and retries calls that fail UNAVAILABLE; the result is then true. The hosts of a list must be
// IP addresses (INVALID_ARGUMENT otherwise): a name that resolves to the replicas goes in one
// dns:/// target, which gRPC resolves again when replicas move.
absl::StatusOr<bool> ReplicatedTarget(absl::string_view address, std::string* target,
                                      grpc::ChannelArguments* args);

// Lets clients of replicated daemons ping every second or two (ReplicatedTarget) without the
// server taking it for abuse.
void PermitClientPings(grpc::ServerBuilder* builder);

// The first "host:port" of a daemon address (of a list, or of a dns:/// target): what TLS
// verifies and what a loopback check looks at.
std::string FirstAddress(absl::string_view address);

}  // namespace splitd

#endif  // SPLITD_COMMON_DAEMON_REPLICAS_H_
