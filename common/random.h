#ifndef SPLITD_COMMON_RANDOM_H_
#define SPLITD_COMMON_RANDOM_H_

#include <cstddef>
#include <string>

namespace splitd {

// `bytes` bytes from OpenSSL's cryptographically secure generator, as lowercase hex (2 x bytes
// characters). For session tokens and incarnation ids. Thread-safe.
std::string RandomHex(size_t bytes);

}  // namespace splitd

#endif  // SPLITD_COMMON_RANDOM_H_
