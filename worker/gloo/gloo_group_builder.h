#ifndef SPLITD_WORKER_GLOO_GLOO_GROUP_BUILDER_H_
#define SPLITD_WORKER_GLOO_GLOO_GROUP_BUILDER_H_

#include <memory>

#include "worker/group_builder.h"

namespace splitd::worker {

// The "cpu:gloo" backend: a Gloo TCP world context bootstrapped through the rendezvous space,
// subgroups formed by `split` (transport addresses sent point-to-point over the world's pairs)
// or `init` (a fresh full-mesh rendezvous per group), validated by an all-reduce of ones.
// Every Gloo exception is caught and returned as a status. Each instance owns one TCP device
// (one event-loop thread) while bootstrapped; calls come from one thread, as GroupBuilder says.
std::unique_ptr<GroupBuilder> MakeGlooGroupBuilder();

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_GLOO_GLOO_GROUP_BUILDER_H_
