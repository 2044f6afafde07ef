#ifndef SPLITD_COMMON_VERSION_H_
#define SPLITD_COMMON_VERSION_H_

namespace splitd {

// Release of the splitd binaries and of the splitd.v1 API they speak.
inline constexpr char kVersion[] = "0.1.0";

}  // namespace splitd

#endif  // SPLITD_COMMON_VERSION_H_
