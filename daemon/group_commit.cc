#include "daemon/group_commit.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"

namespace splitd::daemon {

GroupCommit::GroupCommit(store::StateStore* store)
    : store_(store), callback_thread_([this] { CallbackLoop(); }) {}

GroupCommit::~GroupCommit() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    callbacks_ready_.SignalAll();
  }
  callback_thread_.join();
}

void GroupCommit::CallbackLoop() {
  absl::MutexLock lock(&mu_);
  while (true) {
    while (callbacks_.empty() && !stopping_) callbacks_ready_.Wait(&mu_);
    if (callbacks_.empty()) return;
    std::vector<Callback> callbacks = std::move(callbacks_);
    callbacks_.clear();
    mu_.Unlock();
    for (Callback& callback : callbacks) callback();
    mu_.Lock();
  }
}

GroupCommit::TicketPtr GroupCommit::Enqueue(std::vector<internal::LogRecord> records,
                                            bool critical) {
  auto ticket = std::make_shared<Ticket>();
  ticket->records_ = std::move(records);
  ticket->critical_ = critical;
  absl::MutexLock lock(&mu_);
  queue_.push_back(ticket);
  last_ = ticket;
  return ticket;
}

void GroupCommit::Drain(bool run_callbacks) {
  while (!writing_ && !queue_.empty()) {
    std::vector<TicketPtr> group(queue_.begin(), queue_.end());
    queue_.clear();
    writing_ = true;
    mu_.Unlock();
    std::vector<Callback> callbacks = WriteGroup(std::move(group));
    mu_.Lock();
    writing_ = false;
    settled_.SignalAll();
    if (callbacks.empty()) continue;
    if (run_callbacks) {
      mu_.Unlock();
      for (Callback& callback : callbacks) callback();
      mu_.Lock();
    } else {
      for (Callback& callback : callbacks) callbacks_.push_back(std::move(callback));
      callbacks_ready_.Signal();
    }
  }
}

absl::Status GroupCommit::Wait(const TicketPtr& ticket) {
  absl::MutexLock lock(&mu_);
  while (!ticket->settled_) {
    Drain(/*run_callbacks=*/false);
    if (!ticket->settled_) settled_.Wait(&mu_);
  }
  return ticket->status_;
}

void GroupCommit::Attach(const TicketPtr& ticket, std::function<void(absl::Status)> done,
                         bool state_only) {
  mu_.Lock();
  if (ticket->settled_) {
    absl::Status status = state_only ? StateStatus(*ticket) : ticket->status_;
    mu_.Unlock();
    done(std::move(status));
    return;
  }
  ticket->waiting_.emplace_back(std::move(done), state_only);
  Drain(/*run_callbacks=*/true);
  mu_.Unlock();
}

void GroupCommit::OnSettled(const TicketPtr& ticket, std::function<void(absl::Status)> done) {
  Attach(ticket, std::move(done), /*state_only=*/false);
}

void GroupCommit::OnState(const TicketPtr& ticket, std::function<void(absl::Status)> done) {
  if (ticket == nullptr) {
    done(absl::OkStatus());
    return;
  }
  Attach(ticket, std::move(done), /*state_only=*/true);
}

std::vector<GroupCommit::Callback> GroupCommit::WriteGroup(std::vector<TicketPtr> group) {
  std::vector<store::Change> changes(group.size());
  for (size_t i = 0; i < group.size(); ++i) changes[i].records = std::move(group[i]->records_);
  const absl::Status written = store_->Commit(absl::MakeSpan(changes));
  absl::Status broken = written;
  for (size_t i = 0; broken.ok() && i < group.size(); ++i) {
    if (group[i]->critical_ && !changes[i].status.ok()) broken = changes[i].status;
  }
  // Before any change of the group is settled: nobody answers from a state being taken back.
  if (!broken.ok() && on_failure_) on_failure_(broken);
  std::vector<Callback> callbacks;
  absl::MutexLock lock(&mu_);
  ++stats_.groups;
  stats_.changes += group.size();
  for (size_t i = 0; i < group.size(); ++i) {
    Ticket& ticket = *group[i];
    ticket.status_ = written.ok() ? changes[i].status : written;
    ticket.taken_back_ = !broken.ok();
    ticket.settled_ = true;
    TakeCallbacks(ticket, &callbacks);
  }
  return callbacks;
}

void GroupCommit::TakeCallbacks(Ticket& ticket, std::vector<Callback>* callbacks) {
  for (auto& [done, state_only] : ticket.waiting_) {
    callbacks->push_back([done = std::move(done), status = state_only
                                                               ? StateStatus(ticket)
                                                               : ticket.status_] { done(status); });
  }
  ticket.waiting_.clear();
}

absl::Status GroupCommit::StateStatus(const Ticket& ticket) {
  if (ticket.taken_back_) {
    return absl::UnavailableError(
        "the state this call read was taken back because a store write failed; try again");
  }
  return absl::OkStatus();
}

absl::Status GroupCommit::AwaitState(const TicketPtr& ticket) {
  if (ticket == nullptr) return absl::OkStatus();
  Wait(ticket).IgnoreError();  // the change's own outcome is its caller's; this is a reader
  absl::MutexLock lock(&mu_);
  return StateStatus(*ticket);
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
    TakeCallbacks(*ticket, &callbacks_);
  }
  queue_.clear();
  settled_.SignalAll();
  callbacks_ready_.Signal();
}

GroupCommit::Stats GroupCommit::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace splitd::daemon
