// The Coordinator's epoch changes: lease expiry and deadlines (Tick), the elastic policy's
// decisions (Reconcile), publishing a new epoch, and Reconfigure.

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "daemon/coordinator.h"
#include "daemon/core/leases.h"
#include "daemon/core/status_fields.h"
#include "daemon/report_conversion.h"
#include "daemon/store/records.h"
#include "plan/split_planner.h"
#include "plan/topology_validator.h"
#include "spdlog/spdlog.h"

namespace splitd::daemon {
namespace {

using core::ToTimestamp;

// Turns `record` (a copy of the current epoch's) into the record of the epoch `decision` starts.
void SetNextEpoch(const core::PolicyDecision& decision, absl::Time decided,
                  store::ClusterRecord* record) {
  const int64_t current = record->epoch;
  record->epoch = current + 1;
  record->update_time = decided;
  record->plan_topology = decision.topology;
  record->assignment = decision.assignment;
  record->reason = decision.reason;
  record->shrinks_epoch = decision.previous_ranks.empty() ? 0 : current;
  record->previous_ranks = decision.previous_ranks;
}

// When a lost member was last known alive: its last sign of life, or the close of its last
// plan stream when that came later and the lease had not run out.
absl::Time LastSignOfLife(const core::Member& member, absl::Duration lease) {
  if (member.stream_closed.has_value() && *member.stream_closed > member.last_seen &&
      *member.stream_closed - member.last_seen <= lease) {
    return *member.stream_closed;
  }
  return member.last_seen;
}

}  // namespace

core::PolicyInput Coordinator::PolicyInputOf(const ClusterEntry& entry,
                                             const core::Membership& membership) const {
  core::PolicyInput input;
  input.declared = entry.record.topology;
  input.current = entry.record.PlanTopology();
  input.epoch = entry.record.epoch;
  input.assignment = membership.Assignment();
  const absl::Duration lease = absl::Milliseconds(input.declared.elastic().lease_timeout_ms());
  const absl::Duration grace = plan::TopologyValidator::StreamGrace(input.declared);
  const absl::Time now = clock_->Now();
  for (const std::string& id : input.assignment) {
    const core::Member* member = membership.FindById(id);
    input.nodes.push_back(member->identity.node());
    if (member->liveness == core::Liveness::kLost) input.lost.insert(id);
    if (member->liveness == core::Liveness::kExcluded) input.excluded.insert(id);
    if (member->liveness == core::Liveness::kAlive) {
      input.alive_until[id] = membership.AliveUntil(*member, lease, grace, now, last_heard_);
    }
  }
  for (const core::Member* spare : membership.Spares()) {
    input.spares.push_back(core::SpareMember{spare->member_id, spare->identity.node(),
                                             spare->identity.local_index(), spare->order});
    input.alive_until[spare->member_id] =
        membership.AliveUntil(*spare, lease, grace, now, last_heard_);
  }
  return input;
}

void Coordinator::PlanStreamOpened(const v1::MemberCredentials& member) {
  absl::MutexLock lock(&mu_);
  auto it = memberships_.find(member.cluster());
  if (it != memberships_.end()) it->second->PlanStreamOpened(member.member_id());
}

void Coordinator::PlanStreamClosed(const v1::MemberCredentials& member) {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  auto it = memberships_.find(member.cluster());
  if (it != memberships_.end()) it->second->PlanStreamClosed(member.member_id(), now);
}

void Coordinator::HeardFrom(absl::Time now) {
  const absl::Duration silence = now - last_heard_;
  last_heard_ = std::max(last_heard_, now);
  // Heartbeats of many members come much closer together than any lease.
  if (silence < absl::Milliseconds(plan::kMinHeartbeatIntervalMs) && !holding_) return;
  holding_ = false;
  for (auto& [name, membership] : memberships_) membership->Heard(now, silence);
}

void Coordinator::Tick() {
  struct Loss {
    std::string cluster;
    double detect_ms = 0;
  };
  std::vector<Loss> losses;
  ClusterChange change;  // no records: liveness is not stored
  {
    absl::MutexLock lock(&mu_);
    if (!recovered_) return;
    const absl::Time now = clock_->Now();
    for (auto& [name, membership] : memberships_) {
      const v1::Topology& topology = clusters_.at(name)->record.topology;
      const absl::Duration lease = absl::Milliseconds(topology.elastic().lease_timeout_ms());
      const absl::Duration grace = plan::TopologyValidator::StreamGrace(topology);
      // Nothing can have expired, and no rank gone missing, since the last scan.
      if (!membership->LeaseCheckDue(now, lease, grace)) continue;
      const int64_t held_before = membership->held_members();
      std::vector<const core::Member*> expired =
          membership->ExpireLeases(now, lease, grace, last_heard_);
      holding_ = holding_ || membership->held_members() > 0;
      if (membership->held_members() > 0 && held_before == 0) {
        spdlog::warn(
            "cluster {}: {} members are past their lease but no member was heard for {:.0f} ms: "
            "the daemon may be cut off itself; none is declared lost until a member is heard",
            name, membership->held_members(), absl::ToDoubleMilliseconds(now - last_heard_));
      } else if (membership->held_members() == 0 && held_before > 0) {
        spdlog::info("cluster {}: members are heard again; every lease starts anew", name);
      }
      // A rank held by a member lost before its epoch started (the assignment raced the lease)
      // needs a decision too.
      core::Occurrence occurrence;
      occurrence.assigned = membership->assigned();
      occurrence.degraded = membership->phase() == v1::PHASE_DEGRADED;
      occurrence.members_lost = static_cast<int64_t>(expired.size());
      occurrence.rank_missing = expired.empty() && membership->HasMissingRank();
      Loss loss{name, 0};
      for (const core::Member* member : expired) {
        // Detection: from the member's last sign of life (or its stream's close) to now.
        loss.detect_ms = std::max(loss.detect_ms,
                                  absl::ToDoubleMilliseconds(now - LastSignOfLife(*member, lease)));
        const bool by_stream = member->stream_closed.has_value() && member->plan_streams == 0 &&
                               *member->stream_closed >= member->last_seen;
        change.Add(said::MemberLost(name, membership->plan().epoch, *member, by_stream));
      }
      if (core::ElasticPolicy::DecisionDue(occurrence)) losses.push_back(std::move(loss));
    }
  }
  Publish(change);
  for (const Loss& loss : losses) Reconcile(loss.cluster, loss.detect_ms);
  CheckDeadlines();
  RetryFailed();
}

void Coordinator::RetryFailed() {
  std::vector<std::string> due;
  {
    absl::MutexLock lock(&mu_);
    if (!recovered_) return;
    const absl::Time now = clock_->Now();
    for (auto it = retrying_.begin(); it != retrying_.end();) {
      it = memberships_.count(it->first) == 0 ? retrying_.erase(it) : std::next(it);
    }
    for (auto& [name, membership] : memberships_) {
      const v1::Topology& topology = clusters_.at(name)->record.topology;
      if (topology.elastic().retries() == 0) continue;
      Retrying& retrying = retrying_[name];
      if (membership->phase() == v1::PHASE_READY) retrying.done = 0;
      if (membership->phase() != v1::PHASE_FAILED) continue;
      if (retrying.epoch != membership->plan().epoch) {
        retrying.epoch = membership->plan().epoch;
        retrying.failed_at = now;
      }
      if (retrying.done < topology.elastic().retries() &&
          now - retrying.failed_at >= plan::TopologyValidator::RetryDelay(topology)) {
        due.push_back(name);
      }
    }
  }
  for (const std::string& name : due) Retry(name);
}

void Coordinator::Retry(const std::string& name) {
  absl::MutexLock write_lock(&write_mu_);
  const absl::Time decided = clock_->Now();
  std::shared_ptr<const ClusterEntry> entry;
  core::PolicyInput input;
  int64_t done = 0;
  std::string failure;
  {
    absl::MutexLock lock(&mu_);
    auto it = memberships_.find(name);
    auto retrying = retrying_.find(name);
    if (it == memberships_.end() || retrying == retrying_.end() ||
        it->second->phase() != v1::PHASE_FAILED ||
        retrying->second.epoch != it->second->plan().epoch) {
      return;
    }
    entry = clusters_.at(name);
    input = PolicyInputOf(*entry, *it->second);
    done = retrying->second.done;
    failure = it->second->reason();
  }
  core::PolicyDecision decision = core::ElasticPolicy::Retry(input, done, failure, decided);
  if (decision.action != core::PolicyDecision::Action::kNewEpoch) {
    if (!decision.reason.empty()) spdlog::error("cluster {}: no retry: {}", name, decision.reason);
    return;
  }
  store::ClusterRecord record = entry->record;
  SetNextEpoch(decision, decided, &record);
  if (absl::Status started = StartEpoch(entry, std::move(record), *std::move(decision.plan),
                                        /*detect_ms=*/0, decided, decision.cause);
      !started.ok()) {
    spdlog::error("cluster {}: cannot retry: {}", name, started.ToString());
    return;
  }
  absl::MutexLock lock(&mu_);
  retrying_[name].done = done + 1;
}

void Coordinator::CheckDeadlines() {
  struct Stalled {
    std::string cluster;
    int64_t epoch = 0;
    std::string stall;  // the STALLED reason
    ClusterChange change;
    GroupCommit::TicketPtr ticket;
  };
  std::vector<Stalled> stalled;
  std::vector<std::string> refused;
  {
    absl::MutexLock lock(&mu_);
    if (!recovered_) return;
    const absl::Time now = clock_->Now();
    for (auto& [name, membership] : memberships_) {
      const v1::Deadlines& deadlines = clusters_.at(name)->plan->topology.deadlines();
      std::optional<core::Membership::Stall> stall = membership->FindStall(now, deadlines);
      if (!stall.has_value()) continue;
      const int64_t epoch = stall->report.epoch;
      // Stored like a rank's own failure report (ReportGroupStatus), and announced only once
      // it is durable.
      absl::Status checked =
          membership->CheckReport(stall->report, core::Membership::ReportSource::kDaemon);
      absl::StatusOr<v1::Phase> phase =
          checked.ok() ? membership->ApplyStall(*stall, now) : checked;
      if (!phase.ok()) {
        refused.push_back(absl::StrCat("cluster ", name, " epoch ", epoch, ": ", stall->reason,
                                       "; not failed: ", phase.status().ToString()));
        continue;
      }
      Stalled& s = stalled.emplace_back(Stalled{name, epoch, stall->reason, {}, nullptr});
      s.change.records.push_back(
          store::AddReportRecord(name, epoch, ToReportRequest(name, stall->report)));
      s.change.Add(said::Stalled(name, epoch, *stall->member, *phase, stall->reason));
      s.change.Add(
          said::PhaseChanged(name, epoch, *phase, membership->Timings(), membership->reason()));
      s.ticket = Stage(&s.change);
    }
  }
  for (const std::string& line : refused) spdlog::error("{}", line);
  for (const Stalled& s : stalled) {
    if (absl::Status stored = commits_.Wait(s.ticket); !stored.ok()) {
      // Taken back with the rest of the state; the next tick finds the stall again.
      spdlog::error("cluster {} epoch {}: {}; not failed yet: {}", s.cluster, s.epoch, s.stall,
                    stored.ToString());
      continue;
    }
    Publish(s.change);
  }
}

void Coordinator::Reconcile(const std::string& name, double detect_ms) {
  absl::MutexLock write_lock(&write_mu_);
  const absl::Time decided = clock_->Now();
  std::shared_ptr<const ClusterEntry> entry;
  core::PolicyInput input;
  {
    absl::MutexLock lock(&mu_);
    auto it = memberships_.find(name);
    if (it == memberships_.end() || !it->second->assigned()) return;
    entry = clusters_.at(name);
    input = PolicyInputOf(*entry, *it->second);
    input.degraded = it->second->phase() == v1::PHASE_DEGRADED;
  }
  // Outside the lock: planning a new epoch is O(world).
  core::PolicyDecision decision = core::ElasticPolicy::Decide(input, decided);
  if (decision.action == core::PolicyDecision::Action::kNone) return;
  if (decision.action == core::PolicyDecision::Action::kDegraded) {
    ClusterChange change;  // no records: DEGRADED is derived again after a restart
    {
      absl::MutexLock lock(&mu_);
      auto it = memberships_.find(name);
      if (it == memberships_.end() || clusters_.at(name) != entry) return;
      if (it->second->degraded_reason() == decision.reason) return;  // nothing new to say
      it->second->SetDegraded(decision.reason);
      change.Add(said::Degraded(name, entry->record.epoch, it->second->phase(), decision.reason));
    }
    Publish(change);
    return;
  }
  store::ClusterRecord record = entry->record;
  SetNextEpoch(decision, decided, &record);
  if (absl::Status started = StartEpoch(entry, std::move(record), *std::move(decision.plan),
                                        detect_ms, decided, decision.cause);
      !started.ok()) {
    spdlog::error("cluster {}: cannot start a new epoch: {}", name, started.ToString());
  }
}

absl::Status Coordinator::StartEpoch(const std::shared_ptr<const ClusterEntry>& current,
                                     store::ClusterRecord record, plan::SplitPlan plan,
                                     double detect_ms, absl::Time decided, v1::EpochCause cause,
                                     std::vector<Announcement> also) {
  const std::string name = record.topology.cluster();
  std::shared_ptr<ClusterEntry> entry = MakeEntry(std::move(record), std::move(plan));
  ClusterChange change;
  change.records.push_back(store::PutClusterRecord(entry->record));
  change.notice = ClusterEvent{name, entry->record.epoch, /*deleted=*/false};
  GroupCommit::TicketPtr ticket;
  {
    absl::MutexLock lock(&mu_);
    auto it = memberships_.find(name);
    if (it == memberships_.end() || clusters_.at(name) != current) {
      return absl::AbortedError("the cluster changed while the new epoch was planned");
    }
    const absl::Time now = clock_->Now();
    const double plan_ms = absl::ToDoubleMilliseconds(now - decided);
    clusters_[name] = entry;
    it->second->Exclude(entry->record.excluded);
    it->second->StartEpoch(entry->plan, now, entry->record.assignment);
    it->second->SetEpochCause(entry->record.reason, detect_ms, plan_ms);
    change.Add(said::EpochStarted(*entry->plan, current->record.epoch, entry->record.reason,
                                  entry->record.shrinks_epoch > 0, it->second->phase(), detect_ms,
                                  plan_ms, cause));
    for (Announcement& announcement : also) change.Add(std::move(announcement));
    ticket = Stage(&change);
  }
  // Nobody hears of the epoch before it is durable.
  RETURN_IF_ERROR(commits_.Wait(ticket));
  Publish(change);
  return absl::OkStatus();
}

absl::Status Coordinator::StoreDeclared(const std::shared_ptr<const ClusterEntry>& entry,
                                        store::ClusterRecord record, const std::string& reason) {
  ClusterChange change;
  change.records.push_back(store::PutClusterRecord(record));
  change.Add(said::Note(absl::StrCat("cluster ", record.topology.cluster(), ": ", reason)));
  GroupCommit::TicketPtr ticket;
  {
    absl::MutexLock lock(&mu_);
    auto it = clusters_.find(record.topology.cluster());
    if (it == clusters_.end() || it->second != entry) {
      return absl::AbortedError("the cluster changed while it was reconfigured; try again");
    }
    ticket = Stage(&change);
    it->second = WithRecord(*entry, std::move(record));
  }
  RETURN_IF_ERROR(commits_.Wait(ticket));
  Publish(change);
  return absl::OkStatus();
}

absl::StatusOr<v1::ReconfigureResponse> Coordinator::Reconfigure(
    const v1::ReconfigureRequest& request) {
  RETURN_IF_ERROR(CheckName("cluster", request.cluster()));
  if (request.expected_epoch() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected_epoch must be >= 1 (the epoch the caller saw), got ", request.expected_epoch()));
  }
  absl::MutexLock write_lock(&write_mu_);
  const absl::Time decided = clock_->Now();
  std::shared_ptr<const ClusterEntry> entry;
  core::PolicyInput input;
  {
    absl::MutexLock lock(&mu_);
    if (!recovered_) return absl::UnavailableError("daemon is starting: state not loaded yet");
    auto it = memberships_.find(request.cluster());
    if (it == memberships_.end()) return NotFound(request.cluster());
    entry = clusters_.at(request.cluster());
    if (request.expected_epoch() != entry->record.epoch) {
      return absl::AbortedError(absl::StrCat("expected epoch ", request.expected_epoch(),
                                             " but cluster \"", request.cluster(),
                                             "\" is at epoch ", entry->record.epoch));
    }
    input = PolicyInputOf(*entry, *it->second);
  }
  v1::Topology declared;
  ASSIGN_OR_RETURN(core::PolicyDecision decision,
                   core::ElasticPolicy::Reconfigure(input, request.change(), &declared, decided));
  v1::ReconfigureResponse response;
  response.set_reason(decision.reason);
  response.set_applied(!request.dry_run());
  store::ClusterRecord record = entry->record;
  record.topology = declared;
  for (const std::string& id : decision.excluded) record.excluded.push_back(id);
  if (decision.action == core::PolicyDecision::Action::kNone) {
    // Only the declared target changed; the layout waits for members.
    ASSIGN_OR_RETURN(*response.mutable_plan(), plan::PlanView::ToProto(*entry->plan, {}));
    const core::ElasticPolicy::Layout same{entry->plan.get(), input.assignment};
    *response.mutable_diff() = core::ElasticPolicy::Diff(same, same);
    if (request.dry_run()) return response;
    RETURN_IF_ERROR(StoreDeclared(entry, std::move(record), decision.reason));
    return response;
  }
  SetNextEpoch(decision, decided, &record);
  absl::StatusOr<plan::SplitPlan> plan = plan::SplitPlanner::Build(decision.topology, record.epoch);
  if (!plan.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the new layout does not plan: ", plan.status().message()));
  }
  ASSIGN_OR_RETURN(*response.mutable_plan(), plan::PlanView::ToProto(*plan, {}));
  response.mutable_plan()->set_reason(decision.reason);
  *response.mutable_diff() = core::ElasticPolicy::Diff({entry->plan.get(), input.assignment},
                                                       {&*plan, decision.assignment});
  if (request.dry_run()) return response;
  std::vector<Announcement> excluded;
  {
    absl::MutexLock lock(&mu_);
    const core::Membership& membership = *memberships_.at(request.cluster());
    for (const std::string& id : decision.excluded) {
      if (const core::Member* member = membership.FindById(id)) {
        excluded.push_back(said::MemberExcluded(request.cluster(), record.epoch, *member));
      }
    }
  }
  RETURN_IF_ERROR(StartEpoch(entry, std::move(record), *std::move(plan), 0, decided, decision.cause,
                             std::move(excluded)));
  return response;
}

}  // namespace splitd::daemon
