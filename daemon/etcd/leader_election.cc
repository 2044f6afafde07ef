#include "daemon/etcd/leader_election.h"

#include <chrono>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spdlog/spdlog.h"

namespace splitd::etcd {
namespace {

int64_t SteadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

etcdserverpb::RequestOp CandidatesOp(const std::string& prefix, bool newest, int64_t below) {
  etcdserverpb::RequestOp op;
  etcdserverpb::RangeRequest* range = op.mutable_request_range();
  range->set_key(prefix);
  range->set_range_end(PrefixEnd(prefix));
  range->set_limit(1);
  range->set_sort_target(etcdserverpb::RangeRequest::CREATE);
  range->set_sort_order(newest ? etcdserverpb::RangeRequest::DESCEND
                               : etcdserverpb::RangeRequest::ASCEND);
  if (below > 0) range->set_max_create_revision(below - 1);
  return op;
}

}  // namespace

LeaderElection::LeaderElection(EtcdClient* client, ElectionOptions options,
                               std::function<void(const absl::Status&)> on_lost)
    : client_(client), options_(std::move(options)), on_lost_(std::move(on_lost)) {}

LeaderElection::~LeaderElection() {
  stop_keepalive_.Notify();
  if (keepalive_.joinable()) keepalive_.join();
  Resign();
}

bool LeaderElection::Valid() const {
  return !lost_.load() && SteadyNanos() < valid_until_nanos_.load();
}

std::string LeaderElection::LeaderAddress() const {
  absl::MutexLock lock(&mu_);
  return leader_address_;
}

void LeaderElection::Resign() {
  if (lease_ == 0 || revoked_.exchange(true)) return;
  lost_ = true;
  valid_until_nanos_ = 0;
  if (absl::Status revoked = client_->LeaseRevoke(lease_); !revoked.ok()) {
    spdlog::warn("cannot revoke the election lease {:x}: {}", lease_, revoked.ToString());
  }
}

void LeaderElection::Lose(const absl::Status& why) {
  valid_until_nanos_ = 0;
  if (lost_.exchange(true)) return;
  if (on_lost_) on_lost_(why);
}

void LeaderElection::Renew() {
  const int64_t sent = SteadyNanos();
  const int64_t left = valid_until_nanos_.load() - sent;
  grpc::ClientContext context;
  client_->PrepareStream(&context);
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::nanoseconds(std::max<int64_t>(left, 1)));
  auto stream = client_->lease_stub()->LeaseKeepAlive(&context);
  etcdserverpb::LeaseKeepAliveRequest request;
  request.set_id(lease_);
  etcdserverpb::LeaseKeepAliveResponse response;
  if (!stream->Write(request) || !stream->Read(&response)) {
    stream->WritesDone();
    const grpc::Status status = stream->Finish();
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE) client_->EndpointFailed();
    spdlog::debug("election lease renewal failed: {}", status.error_message());
    return;
  }
  stream->WritesDone();
  context.TryCancel();
  (void)stream->Finish();
  if (response.ttl() <= 0) {
    Lose(absl::UnavailableError(absl::StrFormat("the election lease %x expired in etcd", lease_)));
    return;
  }
  const int64_t until = sent + response.ttl() * int64_t{1000000000};
  if (until > valid_until_nanos_.load()) valid_until_nanos_ = until;
}

void LeaderElection::KeepAlive() {
  const absl::Duration every = options_.ttl / 3;
  while (!lost_.load()) {
    if (SteadyNanos() >= valid_until_nanos_.load()) {
      Lose(absl::UnavailableError(
          absl::StrCat("the election lease was not renewed within its TTL of ",
                       absl::FormatDuration(options_.ttl))));
      return;
    }
    const int64_t before = valid_until_nanos_.load();
    Renew();
    // After a failed renewal, try again soon; after a good one, in a third of the TTL.
    const absl::Duration wait =
        valid_until_nanos_.load() > before ? every : absl::Milliseconds(100);
    if (stop_keepalive_.WaitForNotificationWithTimeout(wait)) return;
  }
}

absl::Status LeaderElection::ReadCandidates(int64_t revision, std::string* predecessor,
                                            int64_t* read_revision) {
  const std::string prefix = options_.prefix + "leader/";
  etcdserverpb::TxnRequest read;
  *read.add_success() = CandidatesOp(prefix, /*newest=*/false, 0);
  *read.add_success() = CandidatesOp(prefix, /*newest=*/true, revision);
  absl::StatusOr<etcdserverpb::TxnResponse> now = client_->Txn(read);
  if (!now.ok()) return now.status();
  const auto& first = now->responses(0).response_range().kvs();
  const auto& before = now->responses(1).response_range().kvs();
  {
    absl::MutexLock lock(&mu_);
    leader_address_ = first.empty() ? std::string() : first[0].value();
  }
  *predecessor = before.empty() ? std::string() : before[0].key();
  *read_revision = now->header().revision();
  return absl::OkStatus();
}

void LeaderElection::WaitForDeletion(const std::string& key, int64_t after_revision,
                                     absl::Notification* stop) {
  grpc::ClientContext context;
  client_->PrepareStream(&context);
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
  auto stream = client_->watch_stub()->Watch(&context);
  etcdserverpb::WatchRequest request;
  request.mutable_create_request()->set_key(key);
  request.mutable_create_request()->set_start_revision(after_revision + 1);
  etcdserverpb::WatchResponse response;
  bool deleted = false;
  if (stream->Write(request)) {
    while (!deleted && !stop->HasBeenNotified() && !lost_.load() && stream->Read(&response)) {
      if (response.canceled()) break;  // compacted history, say: read again
      for (const mvccpb::Event& event : response.events()) {
        if (event.type() == mvccpb::Event::DELETE) deleted = true;
      }
    }
  }
  context.TryCancel();
  (void)stream->Finish();
}

absl::StatusOr<Leadership> LeaderElection::Campaign(absl::Notification* stop) {
  const int64_t ttl_seconds =
      std::max<int64_t>(2, static_cast<int64_t>(std::ceil(absl::ToDoubleSeconds(options_.ttl))));
  const int64_t sent = SteadyNanos();
  absl::StatusOr<etcdserverpb::LeaseGrantResponse> grant = client_->LeaseGrant(ttl_seconds);
  if (!grant.ok()) return grant.status();
  lease_ = grant->id();
  valid_until_nanos_ = sent + grant->ttl() * int64_t{1000000000};
  keepalive_ = std::thread([this] { KeepAlive(); });

  Leadership leadership;
  leadership.key = absl::StrFormat("%sleader/%x", options_.prefix, lease_);
  etcdserverpb::TxnRequest create;
  etcdserverpb::Compare* absent = create.add_compare();
  absent->set_key(leadership.key);
  absent->set_target(etcdserverpb::Compare::CREATE);
  absent->set_result(etcdserverpb::Compare::EQUAL);
  absent->set_create_revision(0);
  etcdserverpb::PutRequest* put = create.add_success()->mutable_request_put();
  put->set_key(leadership.key);
  put->set_value(options_.advertise);
  put->set_lease(lease_);
  create.add_failure()->mutable_request_range()->set_key(leadership.key);
  absl::StatusOr<etcdserverpb::TxnResponse> created = client_->Txn(create);
  if (!created.ok()) return created.status();
  // Created now (its revision is the transaction's), or by an earlier attempt.
  if (created->succeeded()) {
    leadership.term = created->header().revision();
  } else if (created->responses_size() == 1 &&
             created->responses(0).response_range().kvs_size() == 1) {
    leadership.term = created->responses(0).response_range().kvs(0).create_revision();
  } else {
    return absl::UnavailableError(
        absl::StrCat("the election key ", leadership.key, " went away while it was created"));
  }
  spdlog::info("campaigning for leadership as {} (key {}, revision {})", options_.advertise,
               leadership.key, leadership.term);
  while (true) {
    if (stop->HasBeenNotified()) return absl::CancelledError("stopped while campaigning");
    if (lost_.load()) return absl::UnavailableError("the election lease was lost while waiting");
    std::string predecessor;
    int64_t revision = 0;
    if (absl::Status read = ReadCandidates(leadership.term, &predecessor, &revision); !read.ok()) {
      spdlog::warn("cannot read the election's candidates: {}", read.ToString());
      stop->WaitForNotificationWithTimeout(absl::Milliseconds(200));
      continue;
    }
    if (predecessor.empty()) return leadership;
    WaitForDeletion(predecessor, revision, stop);
  }
}

}  // namespace splitd::etcd
