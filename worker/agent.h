#ifndef SPLITD_WORKER_AGENT_H_
#define SPLITD_WORKER_AGENT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/daemon_replicas.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "splitd/v1/agent_service.grpc.pb.h"
#include "worker/fault_injection.h"
#include "worker/group_builder.h"
#include "worker/group_builder_factory.h"
#include "worker/grpc_rendezvous_client.h"
#include "worker/plan_derivation.h"
#include "worker/plan_file.h"
#include "worker/unix_http_server.h"
#include "worker/workload_api.h"
#include "worker/workload_bridge.h"

namespace splitd::worker {

// "READY", "FAILED", ... for a phase (logs, the plan file, the workload endpoint).
const char* PhaseName(v1::Phase phase);

// Everything the agent needs besides the daemon connection (worker/main.cc fills it from flags).
struct AgentOptions {
  // The highest daemon term seen on the channel's answers (common/daemon_replicas.h): a plan
  // stream of a lower term (a replica that no longer leads) is dropped. Null: not checked.
  std::shared_ptr<TermWatermark> terms;
  // Identity (AgentService.Register).
  std::string cluster;
  std::string pod;
  std::string node;
  std::string host = "127.0.0.1";  // where this agent's transports listen; peers connect here
  int64_t local_index = 0;
  // GPU the device communicators bind to; -1 means local_index (one agent per GPU of a node).
  int64_t device_index = -1;

  std::string plan_file;                       // "" writes none
  absl::Duration timeout = absl::Seconds(60);  // bound on every bootstrap step and collective

  // Deadline of each Register, Heartbeat and ReportGroupStatus call.
  absl::Duration rpc_timeout = absl::Seconds(10);
  // Retries of Register, the plan stream and reports.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  int report_attempts = 5;
  // Used when the daemon's RegisterResponse names no heartbeat interval.
  absl::Duration default_heartbeat_interval = absl::Seconds(2);

  // Capabilities registered besides the backends ("cpu", or "cuda" with NCCL's version code and
  // the visible device count).
  std::string device_type = "cpu";
  int64_t nccl_version = 0;
  int64_t device_count = 0;
  // Why a backend this agent cannot form is missing (e.g. "cuda:nccl" -> "backend unavailable:
  // no CUDA device"); named in the failure a plan that needs it gets.
  std::map<std::string, std::string> unavailable_backends;
  // Keep device ("cuda:") communicators after validation. By default the agent releases them
  // once the groups are validated, so the workload owns the GPU memory (sidecar mode).
  bool hold_device_communicators = false;
  // The workload endpoint (docs/workload-endpoint.md): a Unix socket path, "" for none, and the
  // socket file's permission bits.
  std::string workload_socket;
  unsigned workload_socket_mode = 0600;
};

// What the agent holds right now; for logs and in-process tests.
struct AgentState {
  bool registered = false;
  std::string member_id;
  int64_t epoch = 0;  // epoch of the plan last received (0: none yet)
  int64_t rank = -1;  // this member's rank in it; -1 while a spare or before any plan
  v1::Phase phase = v1::PHASE_UNSPECIFIED;  // this rank's phase in that epoch
  std::string error;                        // why it FAILED, when it did
};

// The worker agent's lifecycle (docs/architecture.md, "Lifecycle of an epoch", "Bootstrap and
// split"): Register (with backoff while the daemon or the cluster is not there yet) → WatchPlan →
// for each new epoch: derive and check the plan, report BOOTSTRAPPING, bootstrap one world per
// backend, report SPLITTING, form the groups, report VALIDATING, validate, report READY or
// FAILED with per-group figures and timings, write the plan file → heartbeats until the next
// epoch, when the old groups are released and the new ones formed. A broken stream is
// re-opened with backoff while the communicators are kept; credentials the daemon no longer
// accepts lead to a new Register with the same incarnation.
//
// Threads: Run() drives the plan loop on the calling thread, and builders are only ever driven
// from it (and from the destructor, after Run() has returned). Run() starts two threads: one keeps
// the session (Register, the plan stream, whose newest plan it leaves in `pending_` for the plan
// loop) and one sends heartbeats. Progress reports complete on gRPC's threads; the workload
// endpoint (when on) reads the session and the phase from its connection threads; builders may
// abort communicators on threads of their own (GroupBuilder::AbortInBackground). The agent's
// state these threads share is behind `mu_`, and no RPC is started or waited for while it is held.
// Stop() may be called from any thread (a signal thread) at any time and never blocks: it
// cancels the plan stream, the blocking calls and the rendezvous in flight, and makes Run()
// release its builders, wait for their background teardowns and return. The destructor cancels
// the progress reports still in flight and waits (bounded) for their callbacks. The lifecycle
// never names a backend library: builders come from `factories`.
class Agent {
 public:
  // Talks to the daemon through `channel`. `faults` is for tests only (worker/fault_injection.h).
  Agent(AgentOptions options, std::shared_ptr<grpc::ChannelInterface> channel,
        GroupBuilderFactories factories, FaultInjection faults = FaultInjection());
  // Talks to the daemon through `stub` (a fake in tests).
  Agent(AgentOptions options, std::unique_ptr<v1::AgentService::StubInterface> stub,
        GroupBuilderFactories factories, FaultInjection faults = FaultInjection());
  ~Agent();

  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Runs the lifecycle until Stop(); returns OK then. Returns the error when Register is
  // refused for good (INVALID_ARGUMENT, PERMISSION_DENIED, ...). Call once.
  absl::Status Run();

  // Makes Run() return soon; thread-safe, idempotent, never blocks.
  void Stop();

  AgentState state() const;
  const std::string& incarnation() const { return incarnation_; }

 private:
  // A builder of the held epoch, with the world it serves.
  struct HeldBuilder {
    std::string backend;
    WorldSpec spec;
    std::unique_ptr<GroupBuilder> builder;
  };

  // What a new plan offers for shrinking instead of a fresh bootstrap (Plan.shrinks_epoch).
  struct ShrinkSource {
    int64_t epoch = 0;                    // the epoch the plan shrinks; 0: the plan shrinks none
    std::vector<int32_t> previous_ranks;  // new rank -> rank in `epoch`
    // Device builders this agent holds of `epoch` (hold mode), by backend; taken as each world
    // comes up, and whatever is left afterwards is aborted.
    std::vector<HeldBuilder> builders;
  };

  // The epoch the plan loop is working on or holds.
  struct EpochWork {
    int64_t epoch = 0;
    int64_t rank = -1;
    std::string plan_fingerprint;  // as the daemon sent it
    std::string fingerprint;       // as derived (what reports carry)
    absl::Time received;
    v1::PhaseTimings timings;
    std::vector<v1::GroupReport> groups;
  };

  // ---- Session (agent_session.cc) ----
  // Session thread: Register, then the plan stream, re-opened (or re-registered) until Stop().
  void SessionLoop();
  absl::Status RegisterOnce();
  // Reads one WatchPlan stream until it ends; the status it ended with.
  absl::Status WatchOnce(bool* received_any);
  void InvalidateSession(int64_t generation, const absl::Status& why);

  // Heartbeat thread.
  void HeartbeatLoop();

  // ---- Plan loop, on Run()'s thread (agent_epoch.cc) ----
  void HandlePlan(const v1::WatchPlanResponse& message);
  // Lets go of the held epoch's builders for the plan of `message`: the device builders a plan
  // that shrinks the held epoch can shrink go to the returned source, the rest are released.
  ShrinkSource LetGoOfHeldEpoch(const v1::WatchPlanResponse& message);
  // Derives the plan of `message` (fingerprint checked); on failure reports the epoch FAILED and
  // returns nullopt.
  std::optional<DerivedPlan> DeriveOrFail(const v1::WatchPlanResponse& message, EpochWork* work);
  // Bootstraps (or shrinks from `shrink`), forms, validates and reports the groups of `derived`.
  void FormEpoch(const DerivedPlan& derived, EpochWork* work, ShrinkSource* shrink);
  // The steps of FormEpoch, in order. A step that returns false or nullopt has ended the epoch:
  // abandoned it (stopping, or a newer plan) or failed it (reported and released).
  //
  // Every backend of the plan must be available before any world is entered.
  bool CheckBackends(const DerivedPlan& derived, EpochWork* work);
  // Sets this rank's phase in `work` and sends it as progress; false when stopping.
  bool SendProgress(EpochWork* work, v1::Phase phase);
  // The rendezvous client of `epoch`, published for Stop() and the plan stream to cancel.
  std::shared_ptr<GrpcRendezvousClient> OpenRendezvous(int64_t epoch);
  // Brings up every world; when they are up.
  std::optional<absl::Time> ConnectWorlds(const DerivedPlan& derived, EpochWork* work,
                                          ShrinkSource* shrink, RendezvousClient* rendezvous,
                                          const std::string& prefix);
  // Forms every group on the connected worlds; when they are formed.
  std::optional<absl::Time> FormAllGroups(const DerivedPlan& derived, EpochWork* work,
                                          RendezvousClient* rendezvous, absl::Time bootstrapped,
                                          const std::string& prefix);
  // Validates every group into `work->groups`; a failing group fails the rank (`first_error`)
  // but the others are still validated and reported.
  bool ValidateAllGroups(EpochWork* work, absl::Time formed, const std::string& prefix,
                         std::string* first_error);
  // Reports READY or FAILED, keeps or releases the builders and hands the plan over.
  void FinishEpoch(const DerivedPlan& derived, EpochWork* work, const std::string& prefix,
                   const std::string& first_error);
  // Drops a half-formed epoch: its device builders are aborted (peers may be gone), the rest
  // released.
  void AbandonEpoch(const std::string& prefix, const char* where);
  // Brings up the world of `held`: for a device backend of a plan that shrinks an epoch, every
  // rank first votes through `rendezvous` on shrinking the world it holds of that epoch; then
  // all shrink, or all bootstrap afresh. Sets held->builder when it is still null.
  absl::Status ShrinkOrBootstrap(HeldBuilder* held, ShrinkSource* shrink,
                                 RendezvousClient* rendezvous, const std::string& prefix);
  // The builder `held` can shrink from `shrink`, taken out of it (null when it holds none);
  // `why` says why it cannot shrink (empty when it can) and `held_size` the size of its world.
  std::unique_ptr<GroupBuilder> TakeShrinkCandidate(const HeldBuilder& held, ShrinkSource* shrink,
                                                    std::string* why, int* held_size);
  // The vote: true when every rank of the new world can shrink the held world of `backend`.
  absl::StatusOr<bool> AgreeOnShrink(RendezvousClient* rendezvous, const std::string& backend,
                                     int world_size, bool able, absl::Duration timeout);
  // Tears down the device ("cuda:") builders with Abort (their peers may be gone), in the
  // background: each builder moves to `reaping_` until its teardown is done.
  void AbortDeviceBuilders(std::vector<HeldBuilder>* builders, const std::string& why);
  // Drops the builders of `reaping_` whose teardown is done; with `wait`, all of them (each
  // waits for its own, bounded by its timeout).
  void PruneReaping(bool wait);
  void ReleaseBuilders();
  // Releases the device ("cuda:") builders only, after validation, unless told to hold them.
  void ReleaseDeviceBuilders(const std::string& prefix);
  // True when the work on `epoch` should be dropped: stopping or a newer plan is waiting.
  bool Superseded(int64_t epoch);
  void SetPhase(const EpochWork& work, v1::Phase phase, const std::string& error);

  // ---- Reports to the daemon (agent_report.cc) ----
  // Reports FAILED with `error`, marks every group FAILED, releases, writes the plan file.
  void FailEpoch(EpochWork* work, const DerivedPlan* derived, const std::string& error);
  // Sends a progress phase (BOOTSTRAPPING, SPLITTING, VALIDATING) without waiting.
  void ReportProgress(const EpochWork& work, v1::Phase phase);
  // Cancels the progress reports in flight and waits (bounded) for their callbacks.
  void WaitForAsyncCalls();
  // Reports with retries; ABORTED (stale epoch) and CANCELLED (stopping) are returned at once.
  absl::Status Report(const EpochWork& work, v1::Phase phase, const std::string& error);

  // ---- Hand-over to the workload (agent_hand_over.cc) ----
  // Hands the epoch's outcome to the workload: writes the plan file and publishes the same
  // document (with the full layout) on the workload endpoint.
  void WritePlanFile(const EpochWork& work, const DerivedPlan* derived, const std::string& state,
                     const std::string& error);
  // With `preflight: false`: reports READY and hands the plan over without forming anything.
  void HandOverWithoutPreflight(const DerivedPlan& derived, EpochWork* work);
  // Starts and stops the workload endpoint, when options_.workload_socket names one.
  absl::Status StartWorkloadEndpoint();
  void StopWorkloadEndpoint();

  // ---- Shared (agent.cc) ----
  // Runs `call` with a deadline `timeout`, cancellable by Stop(); CANCELLED when stopping.
  grpc::Status Invoke(absl::Duration timeout,
                      absl::FunctionRef<grpc::Status(grpc::ClientContext*)> call);
  // Sleeps for `duration`; returns true at once when Stop() was called.
  bool SleepOrStop(absl::Duration duration);
  bool stopping() const;
  void Fatal(const absl::Status& status);
  v1::MemberCredentials Credentials() const;

  const AgentOptions options_;
  std::unique_ptr<v1::AgentService::StubInterface> stub_;
  const GroupBuilderFactories factories_;
  const FaultInjection faults_;
  const std::string incarnation_;

  mutable absl::Mutex mu_;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status fatal_ ABSL_GUARDED_BY(mu_);
  // The session: credentials from the last Register, valid until the daemon refuses them.
  bool session_valid_ ABSL_GUARDED_BY(mu_) = false;
  int64_t session_generation_ ABSL_GUARDED_BY(mu_) = 0;
  v1::MemberCredentials credentials_ ABSL_GUARDED_BY(mu_);
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_);
  bool heartbeat_now_ ABSL_GUARDED_BY(mu_) = false;  // restart the heartbeat wait
  // The newest plan the stream delivered that the plan loop has not taken yet.
  std::optional<v1::WatchPlanResponse> pending_ ABSL_GUARDED_BY(mu_);
  int64_t seen_epoch_ ABSL_GUARDED_BY(mu_) = 0;       // known_epoch of the next WatchPlan
  int64_t announced_epoch_ ABSL_GUARDED_BY(mu_) = 0;  // largest epoch a heartbeat named
  // In-flight calls Stop() must cancel; the contexts live on the calling threads' stacks.
  grpc::ClientContext* stream_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::set<grpc::ClientContext*> calls_ ABSL_GUARDED_BY(mu_);
  // Progress reports sent without waiting (ReportProgress), until their callbacks ran.
  std::set<grpc::ClientContext*> async_calls_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<GrpcRendezvousClient> rendezvous_ ABSL_GUARDED_BY(mu_);
  AgentState state_ ABSL_GUARDED_BY(mu_);
  // Why the daemon excluded this member; empty while it is not.
  std::string excluded_ ABSL_GUARDED_BY(mu_);

  // Owned by Run()'s thread only (and by the destructor, after Run() has returned).
  std::vector<HeldBuilder> builders_;
  // Device builders whose communicators are being aborted in the background
  // (GroupBuilder::AbortInBackground), kept until that is done so that it never holds up the
  // next epoch; waited for when stopping.
  std::vector<std::unique_ptr<GroupBuilder>> reaping_;
  std::optional<EpochWork> held_;

  std::thread session_thread_;
  std::thread heartbeat_thread_;

  // The workload endpoint; null when it is off. The bridge outlives the server using it.
  std::unique_ptr<WorkloadBridge> bridge_;
  std::unique_ptr<WorkloadApi> workload_api_;
  std::unique_ptr<UnixHttpServer> endpoint_;
};

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_AGENT_H_
