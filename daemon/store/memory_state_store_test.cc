#include "daemon/store/memory_state_store.h"

#include <memory>

#include "daemon/store/state_store_conformance.h"

namespace splitd::store {
namespace {

INSTANTIATE_TEST_SUITE_P(Memory, StateStoreConformanceTest, ::testing::Values(StoreFactory([] {
                           return std::make_unique<MemoryStateStore>();
                         })));

}  // namespace
}  // namespace splitd::store
