#ifndef SPLITD_WORKER_WORKLOAD_API_H_
#define SPLITD_WORKER_WORKLOAD_API_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "splitd/v1/agent_service.pb.h"
#include "worker/unix_http_server.h"

namespace splitd::worker {

// One key-value operation of the workload's store (docs/workload-endpoint.md, "Requests").
struct StoreOp {
  enum class Kind { kSet, kGet, kWait, kAdd, kCompareSet, kCheck, kDelete, kNumKeys };
  Kind kind = Kind::kGet;
  int64_t epoch = 0;
  std::vector<std::string> keys;  // one for set, add, compare_set and delete
  std::string value;              // set
  std::string expected;           // compare_set
  std::string desired;            // compare_set
  int64_t delta = 0;              // add
  absl::Duration timeout;         // get and wait
};

// What a StoreOp answers; the fields its kind fills.
struct StoreResult {
  std::vector<std::string> values;  // get
  std::string value;                // compare_set
  int64_t number = 0;               // add, num_keys
  bool flag = false;                // check (all exist), delete (existed)
};

// What the endpoint needs from the agent behind it. Implementations are thread-safe: requests of
// several connections arrive at once.
class WorkloadBackend {
 public:
  virtual ~WorkloadBackend() = default;
  // The plan document (with its layout) of the epoch handed over last, as soon as that epoch is
  // above `after` (-1: whatever is held now; UNAVAILABLE when nothing is); DEADLINE_EXCEEDED at
  // `deadline`, CANCELLED once `gone()`.
  virtual absl::StatusOr<std::string> PlanDocument(int64_t after, absl::Time deadline,
                                                   const ClientGone& gone) = 0;
  // {"cluster", "member_id", "epoch", "rank", "phase"} as JSON text.
  virtual std::string StatusDocument() = 0;
  // Runs `op` against the daemon's rendezvous space; waits are cut short when `gone()`.
  virtual absl::StatusOr<StoreResult> Store(const StoreOp& op, const ClientGone& gone) = 0;
  // Relays a workload report (its member credentials and fingerprint are the agent's to add);
  // returns the cluster's phase.
  virtual absl::StatusOr<v1::Phase> Report(const v1::ReportGroupStatusRequest& report) = 0;
};

// The endpoint's HTTP surface: parses and checks each request, calls the backend, and turns its
// answer or error into JSON with the matching HTTP status. Stateless; thread-safe when the
// backend is.
class WorkloadApi {
 public:
  explicit WorkloadApi(WorkloadBackend* backend) : backend_(backend) {}

  HttpResponse Handle(const HttpRequest& request, const ClientGone& gone) const;

  // {"error": {"code": ..., "message": ...}} with the HTTP status that matches the code.
  static HttpResponse Error(const absl::Status& status);

 private:
  HttpResponse HandlePlan(const HttpRequest& request, const ClientGone& gone) const;
  HttpResponse HandleStore(const std::string& op, const HttpRequest& request,
                           const ClientGone& gone) const;
  HttpResponse HandleReport(const HttpRequest& request) const;

  WorkloadBackend* const backend_;
};

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_WORKLOAD_API_H_
