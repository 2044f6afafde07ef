#ifndef SPLITD_COMMON_STATUS_MACROS_H_
#define SPLITD_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Propagation macros: Debian's Abseil (20220623) has no ABSL_RETURN_IF_ERROR.

#define SPLITD_CONCAT_INNER_(a, b) a##b
#define SPLITD_CONCAT_(a, b) SPLITD_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    ::absl::Status splitd_status_ = (expr);          \
    if (!splitd_status_.ok()) return splitd_status_; \
  } while (false)

// `ASSIGN_OR_RETURN(T x, StatusOrExpr);` declares/assigns `x` or returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(SPLITD_CONCAT_(splitd_statusor_, __LINE__), lhs, expr)

#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                           \
  if (!statusor.ok()) return statusor.status();     \
  lhs = std::move(statusor).value()

#endif  // SPLITD_COMMON_STATUS_MACROS_H_
