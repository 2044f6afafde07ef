#ifndef SPLITD_WORKER_GLOO_SUBGROUP_CONTEXT_H_
#define SPLITD_WORKER_GLOO_SUBGROUP_CONTEXT_H_

#include <chrono>
#include <memory>
#include <utility>

#include "gloo/context.h"
#include "gloo/transport/context.h"
#include "gloo/transport/device.h"

namespace splitd::worker {

// A gloo::Context over a transport context whose pairs we connected ourselves (the `split`
// method), so Gloo's collectives run on it like on one from connectFullMesh. Gloo keeps the
// device and transport context protected and offers no public way to attach them; this
// subclass is that way. Same threading rules as gloo::Context.
class SubgroupContext : public ::gloo::Context {
 public:
  SubgroupContext(int rank, int size, std::chrono::milliseconds timeout,
                  std::shared_ptr<::gloo::transport::Device> device,
                  std::shared_ptr<::gloo::transport::Context> transport_context)
      : ::gloo::Context(rank, size) {
    setTimeout(timeout);
    device_ = std::move(device);
    transportContext_ = std::move(transport_context);
  }
};

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_GLOO_SUBGROUP_CONTEXT_H_
