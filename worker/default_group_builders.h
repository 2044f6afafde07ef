#ifndef SPLITD_WORKER_DEFAULT_GROUP_BUILDERS_H_
#define SPLITD_WORKER_DEFAULT_GROUP_BUILDERS_H_

#include "worker/group_builder_factory.h"

namespace splitd::worker {

// The backends this build of splitd-agent can form: "cpu:gloo". Kept apart from the Agent so
// that the lifecycle code never names a library and tests can hand in fakes.
GroupBuilderFactories DefaultGroupBuilderFactories();

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_DEFAULT_GROUP_BUILDERS_H_
