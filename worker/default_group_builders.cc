#include "worker/default_group_builders.h"

#include "worker/gloo/gloo_group_builder.h"

namespace splitd::worker {

GroupBuilderFactories DefaultGroupBuilderFactories() {
  GroupBuilderFactories factories;
  factories["cpu:gloo"] = [] { return MakeGlooGroupBuilder(); };
  return factories;
}

}  // namespace splitd::worker
