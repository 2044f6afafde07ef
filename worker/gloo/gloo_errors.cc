#include "worker/gloo/gloo_errors.h"

#include <exception>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gloo/common/logging.h"

namespace splitd::worker {
namespace {

bool LooksLikeTimeout(const std::string& message) {
  const std::string lower = absl::AsciiStrToLower(message);
  return absl::StrContains(lower, "timed out") || absl::StrContains(lower, "timeout");
}

}  // namespace

absl::Status StatusFromCurrentException(const std::string& what) {
  try {
    throw;
  } catch (const GlooStatusError& e) {
    return absl::Status(e.status().code(), absl::StrCat(what, ": ", e.status().message()));
  } catch (const ::gloo::IoException& e) {
    if (LooksLikeTimeout(e.what())) {
      return absl::DeadlineExceededError(absl::StrCat(what, ": ", e.what()));
    }
    return absl::UnavailableError(absl::StrCat(what, ": ", e.what()));
  } catch (const ::gloo::Exception& e) {
    if (LooksLikeTimeout(e.what())) {
      return absl::DeadlineExceededError(absl::StrCat(what, ": ", e.what()));
    }
    return absl::UnavailableError(absl::StrCat(what, ": ", e.what()));
  } catch (const ::gloo::EnforceNotMet& e) {
    return absl::InternalError(absl::StrCat(what, ": gloo check failed: ", e.what()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what()));
  } catch (...) {
    return absl::UnknownError(absl::StrCat(what, ": unknown exception"));
  }
}

}  // namespace splitd::worker
