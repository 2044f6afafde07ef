#ifndef SPLITD_COMMON_SAME_SECRET_H_
#define SPLITD_COMMON_SAME_SECRET_H_

#include "absl/strings/string_view.h"

namespace splitd {

// Constant-time equality of two secrets of the same length, so that comparing a guess reveals
// nothing through timing (only whether the lengths differ).
inline bool SameSecret(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char difference = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    difference |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return difference == 0;
}

}  // namespace splitd

#endif  // SPLITD_COMMON_SAME_SECRET_H_
