#ifndef SPLITD_COMMON_GRPC_STATUS_H_
#define SPLITD_COMMON_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace splitd {

// The one place where absl::Status and grpc::Status are converted; both use the canonical codes.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace splitd

#endif  // SPLITD_COMMON_GRPC_STATUS_H_
