#ifndef SPLITD_WORKER_GROUP_BUILDER_FACTORY_H_
#define SPLITD_WORKER_GROUP_BUILDER_FACTORY_H_

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "worker/group_builder.h"

namespace splitd::worker {

// Makes a fresh builder for one epoch; the agent calls it once per epoch and backend.
using GroupBuilderFactory = std::function<std::unique_ptr<GroupBuilder>()>;

// The backends an agent can form, by backend part ("cpu:gloo", "cuda:nccl"). The keys are also
// what the agent registers as its capabilities.
using GroupBuilderFactories = std::map<std::string, GroupBuilderFactory>;

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_GROUP_BUILDER_FACTORY_H_
