#include "daemon/group_commit.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"

namespace splitd::daemon {

GroupCommit::TicketPtr GroupCommit::Enqueue(std::vector<internal::LogRecord> records,
                                            bool critical) {
  auto ticket = std::make_shared<Ticket>();
  ticket->records_ = std::move(records);
  ticket->critical_ = critical;
  absl::MutexLock lock(&mu_);
  ticket->sequence_ = next_sequence_++;
  queue_.push_back(ticket);
  last_ = ticket;
  return ticket;
}

absl::Status GroupCommit::Wait(const TicketPtr& ticket) {
  mu_.Lock();
  while (!ticket->settled_) {
    if (writing_ || queue_.empty()) {
      settled_.Wait(&mu_);
      continue;
    }
    std::vector<TicketPtr> group(queue_.begin(), queue_.end());
    queue_.clear();
    writing_ = true;
    mu_.Unlock();
    WriteGroup(std::move(group));
    mu_.Lock();
    writing_ = false;
    settled_.SignalAll();
  }
  absl::Status status = ticket->status_;
  mu_.Unlock();
  return status;
}

void GroupCommit::WriteGroup(std::vector<TicketPtr> group) {
  std::vector<store::Change> changes(group.size());
  for (size_t i = 0; i < group.size(); ++i) changes[i].records = std::move(group[i]->records_);
  const absl::Status written = store_->Commit(absl::MakeSpan(changes));
  absl::Status broken = written;
  for (size_t i = 0; broken.ok() && i < group.size(); ++i) {
    if (group[i]->critical_ && !changes[i].status.ok()) broken = changes[i].status;
  }
  // Before any change of the group is settled: nobody answers from a state being taken back.
  if (!broken.ok() && on_failure_) on_failure_(broken);
  absl::MutexLock lock(&mu_);
  ++stats_.groups;
  stats_.changes += group.size();
  for (size_t i = 0; i < group.size(); ++i) {
    Ticket& ticket = *group[i];
    ticket.status_ = written.ok() ? changes[i].status : written;
    ticket.taken_back_ = !broken.ok();
    ticket.settled_ = true;
  }
}

absl::Status GroupCommit::AwaitState(const TicketPtr& ticket) {
  if (ticket == nullptr) return absl::OkStatus();
  Wait(ticket).IgnoreError();  // the change's own outcome is its caller's; this is a reader
  absl::MutexLock lock(&mu_);
  if (ticket->taken_back_) {
    return absl::UnavailableError(
        "the state this call read was taken back because a store write failed; try again");
  }
  return absl::OkStatus();
}

GroupCommit::TicketPtr GroupCommit::Pending() const {
  absl::MutexLock lock(&mu_);
  return last_ != nullptr && !last_->settled_ ? last_ : nullptr;
}

void GroupCommit::FailQueued(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  for (const TicketPtr& ticket : queue_) {
    ticket->status_ = absl::UnavailableError(absl::StrCat(
        "an earlier state change failed, and this one was built on it: ", status.message()));
    ticket->taken_back_ = true;
    ticket->settled_ = true;
  }
  queue_.clear();
  settled_.SignalAll();
}

GroupCommit::Stats GroupCommit::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace splitd::daemon
