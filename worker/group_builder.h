#ifndef SPLITD_WORKER_GROUP_BUILDER_H_
#define SPLITD_WORKER_GROUP_BUILDER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "worker/rendezvous_client.h"

namespace splitd::worker {

// This rank's group of one kind.
struct GroupAssignment {
  std::string kind;              // group kind name (tp, pp, ...)
  int kind_index = 0;            // position of the kind in the plan
  int64_t group_index = 0;       // index of the group within its kind (canonical order)
  std::vector<int32_t> members;  // global ranks in local-rank order; contains `rank`
  int local_rank = 0;            // position of this rank in `members`
};

// What a backend needs to form this rank's groups of one epoch.
struct WorldSpec {
  std::string cluster;
  int64_t epoch = 0;
  int rank = 0;
  int world_size = 0;
  std::string method;                   // "split" or "init"
  std::vector<GroupAssignment> groups;  // this rank's groups for this backend, by kind_index
  // Every kind of the plan that uses this backend, as (kind_index, name) in plan order, also
  // those this rank takes no part in: a collective split (ncclCommSplit) needs every rank of
  // the world in every kind, with NOCOLOR where it is no member.
  std::vector<std::pair<int, std::string>> kinds;
  int device_index = 0;  // the member's local device (GPU) index
  int64_t allreduce_elements = 1024;
  int64_t bandwidth_bytes = 0;                 // 0: no bandwidth measurement
  std::string host = "127.0.0.1";              // address this rank's transport listens on
  absl::Duration timeout = absl::Seconds(60);  // bound on every bootstrap step and collective
};

// The outcome of validating one group on this rank.
struct GroupValidation {
  std::string kind;
  int64_t group_index = 0;
  bool ok = false;
  double allreduce_value = 0;     // what the all-reduce of ones produced (min over elements)
  double latency_us = 0;          // the validation all-reduce, wall time on this rank
  double bus_bandwidth_gbps = 0;  // 2(n-1)/n * bytes / t, when bandwidth_bytes > 0
  std::string error;
};

// A communication backend (Gloo, NCCL) behind one interface, so the agent's lifecycle code
// never names a library. One instance per agent; calls come from one thread, in the order
// BootstrapWorld (or ShrinkWorld of a held world), FormGroups, Validate, then Release (or
// Release or Abort at any point to abandon). Every failure is a status, never an exception or a
// crash.
class GroupBuilder {
 public:
  virtual ~GroupBuilder() = default;

  // The backend string this builder serves, e.g. "cpu:gloo".
  virtual std::string backend() const = 0;

  // Connects the world communicator of `spec.epoch` through `rendezvous`.
  virtual absl::Status BootstrapWorld(const WorldSpec& spec, RendezvousClient* rendezvous) = 0;

  // Forms every group in `spec.groups` with `spec.method`.
  virtual absl::Status FormGroups(const WorldSpec& spec, RendezvousClient* rendezvous) = 0;

  // Runs the validation all-reduce (and the bandwidth run) in every formed group.
  virtual absl::StatusOr<std::vector<GroupValidation>> Validate(const WorldSpec& spec) = 0;

  // Tears down every communicator; safe to call more than once.
  virtual void Release() = 0;

  // Whether ShrinkWorld can work here at all (the backend and the library it loaded support
  // it). No side effects: the ranks of an epoch ask it first and agree on shrinking or
  // re-forming before any of them enters a collective.
  virtual bool CanShrink() const { return false; }

  // Forms the world of `spec` (a later epoch) from the world this builder holds by removing
  // ranks, without a fresh bootstrap: new rank r is the held world's rank `previous_ranks[r]`
  // (ascending); the held ranks missing from it are removed and may be dead. The held subgroups
  // and the held world are torn down as by AbortInBackground, without waiting. On success the
  // builder holds `spec`'s world as after BootstrapWorld, and FormGroups follows. Collective over
  // the remaining ranks only: every rank of `spec` calls it, the removed ones must not.
  // UNIMPLEMENTED when the backend cannot shrink; nothing was touched then. After any other error
  // the held world may be gone: Abort, then BootstrapWorld.
  virtual absl::Status ShrinkWorld(const WorldSpec& spec,
                                   const std::vector<int32_t>& previous_ranks,
                                   RendezvousClient* rendezvous) {
    static_cast<void>(spec);
    static_cast<void>(previous_ranks);
    static_cast<void>(rendezvous);
    return absl::UnimplementedError(absl::StrCat(backend(), " cannot shrink a world; re-form it"));
  }

  // Like Release, but waits on no peer: for communicators whose peers may be gone (a rank
  // removed from the next epoch, a lost member). Safe to call more than once.
  virtual void Abort() { Release(); }

  // Abort without waiting for the teardown: on return the builder holds nothing and may
  // BootstrapWorld again at once, while what it held is torn down in the background (which
  // can take longer than forming a new world). Release, Abort and the destructor wait for that
  // teardown, bounded by the last spec's timeout, so a released builder leaves nothing behind.
  virtual void AbortInBackground() { Abort(); }

  // Whether a teardown started by AbortInBackground or ShrinkWorld is still running.
  virtual bool TearingDown() const { return false; }
};

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_GROUP_BUILDER_H_
