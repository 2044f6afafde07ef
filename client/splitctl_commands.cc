#include "client/splitctl_commands.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cluster_printer.h"
#include "client/plan_printer.h"
#include "client/splitctl_args.h"
#include "client/status_printer.h"
#include "client/table_printer.h"
#include "common/bearer_token.h"
#include "common/daemon_replicas.h"
#include "common/error_table.h"
#include "common/grpc_logging.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "common/tls_credentials.h"
#include "common/topology_document.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "splitd/v1/control_service.grpc.pb.h"

namespace splitd::cli {
namespace {

// Plans of a million ranks are far beyond gRPC's default 4 MiB.
constexpr int kMaxReceiveBytes = 256 << 20;

// Messages from the daemon or gRPC may span lines; splitctl's error is one line.
std::string OneLine(absl::string_view text) {
  std::string line = absl::StrReplaceAll(text, {{"\r\n", " "}, {"\n", " "}, {"\r", " "}});
  return std::string(absl::StripAsciiWhitespace(line));
}

// Reads FILE, or stdin for "-", stopping just past the document size limit so that the
// parser refuses an oversized document without splitctl reading all of it.
absl::StatusOr<std::string> ReadDocument(const std::string& file, const std::string& label,
                                         std::istream& in) {
  std::ifstream stream;
  std::istream* source = &in;
  if (file != "-") {
    stream.open(file, std::ios::binary);
    if (!stream) {
      return absl::InvalidArgumentError(
          absl::StrCat(label, ": cannot open: ", std::strerror(errno)));
    }
    source = &stream;
  }
  std::string text;
  std::vector<char> buffer(1 << 16);
  while (text.size() <= TopologyDocument::kMaxDocumentBytes) {
    source->read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    text.append(buffer.data(), static_cast<size_t>(source->gcount()));
    if (!*source) break;
  }
  if (source->bad()) {
    return absl::InvalidArgumentError(absl::StrCat(label, ": cannot read: ", std::strerror(errno)));
  }
  return text;
}

// The signal that asked a real-clock watch to stop; 0 while none did. Written by the handler.
std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free int");

void OnStopSignal(int signal) { g_stop_signal.store(signal, std::memory_order_relaxed); }

// The real WatchClock. While it lives, SIGINT and SIGTERM request a stop instead of killing
// the process; each handler is one-shot (SA_RESETHAND), so a second Ctrl-C still kills a
// splitctl stuck in a call. The previous handlers come back on destruction.
class SystemWatchClock final : public WatchClock {
 public:
  SystemWatchClock() {
    g_stop_signal.store(0, std::memory_order_relaxed);
    struct sigaction action = {};
    action.sa_handler = OnStopSignal;
    action.sa_flags = SA_RESETHAND;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &previous_int_);
    sigaction(SIGTERM, &action, &previous_term_);
  }

  ~SystemWatchClock() override {
    sigaction(SIGINT, &previous_int_, nullptr);
    sigaction(SIGTERM, &previous_term_, nullptr);
  }

  SystemWatchClock(const SystemWatchClock&) = delete;
  SystemWatchClock& operator=(const SystemWatchClock&) = delete;

  absl::Time Now() override { return absl::Now(); }

  // Sleeps in short slices so that a signal ends the wait promptly.
  void Sleep(absl::Duration duration) override {
    const absl::Time end = absl::Now() + duration;
    while (StopSignal() == 0) {
      const absl::Time now = absl::Now();
      if (now >= end) break;
      absl::SleepFor(std::min(end - now, absl::Milliseconds(20)));
    }
  }

  int StopSignal() override { return g_stop_signal.load(std::memory_order_relaxed); }

 private:
  struct sigaction previous_int_ = {};
  struct sigaction previous_term_ = {};
};

// The cluster's WatchEvents stream, read on a thread of its own: events since the watch began,
// for the watch loop to print and to re-read the status at once instead of at the next poll.
class EventFeed {
 public:
  EventFeed(v1::ControlService::Stub* stub, const std::string& cluster) {
    v1::WatchEventsRequest request;
    request.set_cluster(cluster);
    request.set_only_new(true);
    thread_ = std::thread([this, stub, request] {
      std::unique_ptr<grpc::ClientReader<v1::Event>> reader = stub->WatchEvents(&context_, request);
      v1::Event event;
      while (reader->Read(&event)) {
        absl::MutexLock lock(&mu_);
        events_.push_back(event);
      }
      reader->Finish();  // a daemon without the stream, or a cancel: polling goes on
    });
  }
  ~EventFeed() {
    context_.TryCancel();
    thread_.join();
  }
  EventFeed(const EventFeed&) = delete;
  EventFeed& operator=(const EventFeed&) = delete;

  bool HasNews() {
    absl::MutexLock lock(&mu_);
    return !events_.empty();
  }
  std::vector<v1::Event> Take() {
    absl::MutexLock lock(&mu_);
    return std::exchange(events_, {});
  }

 private:
  grpc::ClientContext context_;
  absl::Mutex mu_;
  std::vector<v1::Event> events_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// "event 12 EPOCH_STARTED epoch 2 (m-5 rank 5): <reason>", e.g. "event 14 STALLED epoch 2 (m-5
// rank 5): <which layer and phase, for how long>"; a kind this splitctl does not know by its
// number.
std::string EventLine(const v1::Event& event) {
  std::string kind = v1::EventKind_Name(event.kind());
  if (kind.empty()) kind = absl::StrCat(event.kind());
  absl::string_view short_kind = kind;
  absl::ConsumePrefix(&short_kind, "EVENT_KIND_");
  std::string who;
  if (!event.member_id().empty()) {
    who =
        absl::StrCat(" (", event.member_id(),
                     event.rank() >= 0 ? absl::StrCat(" rank ", event.rank()) : std::string(), ")");
  }
  return absl::StrCat("event ", event.sequence(), " ", short_kind, " epoch ", event.epoch(), who,
                      event.reason().empty() ? "" : ": ", event.reason());
}

std::string SignalName(int signal) {
  switch (signal) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    default:
      return absl::StrCat("signal ", signal);
  }
}

// What `status --watch` compares between polls: the status without what moves with every
// heartbeat or every second while nothing happens (the members' last_seen, the waiting ranks'
// seconds; in the table, how long each rank has been in its phase), as printed for the table.
std::string ChangeKey(const v1::ClusterStatus& status, OutputFormat output) {
  v1::ClusterStatus copy = status;
  for (v1::MemberStatus& member : *copy.mutable_members()) member.clear_last_seen();
  for (v1::WaitingRank& waiting : *copy.mutable_waiting_on()) {
    waiting.clear_seconds();
    waiting.clear_last_heartbeat_seconds();
  }
  if (output != OutputFormat::kTable) return copy.SerializeAsString();
  for (v1::MemberStatus& member : *copy.mutable_members()) member.clear_phase_since();
  return StatusPrinter::Table(copy, absl::UnixEpoch());
}

// Carries out one parsed command against the daemon at args.address.
class Splitctl {
 public:
  Splitctl(const SplitctlArgs& args, std::shared_ptr<grpc::Channel> channel, std::istream& in,
           std::ostream& out, WatchClock* clock)
      : args_(args), in_(in), out_(out), clock_(clock) {
    stub_ = v1::ControlService::NewStub(std::move(channel));
  }

  absl::Status Run() {
    switch (args_.command) {
      case Command::kApply:
        return Apply();
      case Command::kGet:
        return Get();
      case Command::kDescribe:
        return Describe();
      case Command::kPlan:
        return Plan();
      case Command::kStatus:
        return ShowStatus();
      case Command::kDelete:
        return Delete();
      case Command::kReconfigure:
        return Reconfigure();
      case Command::kNone:
        break;
    }
    return absl::InvalidArgumentError("no command given");
  }

  // The signal that ended a `status --watch`; 0 if none did.
  int stop_signal() const { return stop_signal_; }

 private:
  // A context whose deadline is --timeout from now; one per call.
  std::unique_ptr<grpc::ClientContext> Context() const {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() +
                          absl::ToChronoMilliseconds(args_.timeout));
    return context;
  }

  // The status of a failed call, its message being the line splitctl prints.
  absl::Status CallError(const grpc::Status& grpc_status) const {
    absl::Status status = FromGrpcStatus(grpc_status);
    std::string reason =
        absl::StrCat(absl::StatusCodeToString(status.code()), ": ", status.message());
    switch (status.code()) {
      case absl::StatusCode::kUnavailable:
        return absl::Status(status.code(), absl::StrCat("daemon unreachable at ", args_.address,
                                                        " (", reason, ")"));
      case absl::StatusCode::kDeadlineExceeded:
        return absl::Status(status.code(),
                            absl::StrCat("no reply from ", args_.address, " within ",
                                         absl::FormatDuration(args_.timeout), " (", reason, ")"));
      default:
        break;
    }
    const absl::string_view hint = DaemonErrorCode(status.code()).splitctl_hint;
    if (hint.empty()) return absl::Status(status.code(), reason);
    return absl::Status(status.code(), absl::StrCat(reason, " (", hint, ")"));
  }

  // Prints a JSON value as -o json or -o yaml asks.
  void Print(const nlohmann::ordered_json& value) {
    if (args_.output == OutputFormat::kYaml) {
      out_ << TopologyDocument::RenderYaml(value);
    } else {
      out_ << TopologyDocument::RenderJson(value);
    }
  }

  absl::Status Apply() {
    const std::string label = args_.file == "-" ? "<stdin>" : args_.file;
    ASSIGN_OR_RETURN(std::string text, ReadDocument(args_.file, label, in_));
    absl::StatusOr<v1::Topology> topology = TopologyDocument::Parse(text);
    if (!topology.ok()) {
      return absl::Status(topology.status().code(),
                          absl::StrCat(label, ": ", topology.status().message()));
    }
    v1::ApplyTopologyRequest request;
    *request.mutable_topology() = *std::move(topology);
    if (!args_.join_token_file.empty()) {
      ASSIGN_OR_RETURN(*request.mutable_join_token(),
                       ReadTokenFile(args_.join_token_file, "join_token_file"));
    }
    v1::ApplyTopologyResponse response;
    grpc::Status status = stub_->ApplyTopology(Context().get(), request, &response);
    if (!status.ok()) return CallError(status);
    if (args_.output == OutputFormat::kTable) {
      out_ << ClusterPrinter::ApplyResult(response);
    } else {
      Print(ClusterPrinter::ToJson(response.cluster()));
    }
    return absl::OkStatus();
  }

  absl::Status Get() {
    if (!args_.name.empty()) {
      ASSIGN_OR_RETURN(v1::Cluster cluster, GetCluster());
      if (args_.output != OutputFormat::kTable) {
        Print(ClusterPrinter::ToJson(cluster));
        return absl::OkStatus();
      }
      google::protobuf::RepeatedPtrField<v1::Cluster> one;
      *one.Add() = std::move(cluster);
      out_ << ClusterPrinter::Table(one, absl::Now());
      return absl::OkStatus();
    }
    v1::ListClustersResponse response;
    grpc::Status status =
        stub_->ListClusters(Context().get(), v1::ListClustersRequest(), &response);
    if (!status.ok()) return CallError(status);
    if (args_.output != OutputFormat::kTable) {
      nlohmann::ordered_json clusters = nlohmann::ordered_json::array();
      for (const v1::Cluster& cluster : response.clusters()) {
        clusters.push_back(ClusterPrinter::ToJson(cluster));
      }
      Print(clusters);
    } else if (response.clusters().empty()) {
      out_ << "No clusters found.\n";
    } else {
      out_ << ClusterPrinter::Table(response.clusters(), absl::Now());
    }
    return absl::OkStatus();
  }

  absl::StatusOr<v1::Cluster> GetCluster() {
    v1::GetClusterRequest request;
    request.set_name(args_.name);
    v1::GetClusterResponse response;
    grpc::Status status = stub_->GetCluster(Context().get(), request, &response);
    if (!status.ok()) return CallError(status);
    return std::move(*response.mutable_cluster());
  }

  absl::Status Describe() {
    ASSIGN_OR_RETURN(v1::Cluster cluster, GetCluster());
    if (args_.output == OutputFormat::kTable) {
      out_ << ClusterPrinter::Describe(cluster, absl::Now());
    } else {
      Print(ClusterPrinter::ToJson(cluster));
    }
    return absl::OkStatus();
  }

  absl::Status Plan() {
    v1::GetPlanRequest request;
    request.set_cluster(args_.name);
    request.set_group(args_.group);
    if (args_.rank.has_value()) request.set_rank(*args_.rank);
    v1::GetPlanResponse response;
    grpc::Status status = stub_->GetPlan(Context().get(), request, &response);
    if (!status.ok()) return CallError(status);
    switch (args_.output) {
      case OutputFormat::kJson:
        out_ << PlanPrinter::Json(response.plan());
        break;
      case OutputFormat::kYaml:
        out_ << PlanPrinter::Yaml(response.plan());
        break;
      case OutputFormat::kTable:
        out_ << PlanPrinter::Table(response.plan(), args_.rank);
        break;
    }
    return absl::OkStatus();
  }

  absl::StatusOr<v1::ClusterStatus> FetchStatus() {
    v1::GetStatusRequest request;
    request.set_cluster(args_.name);
    v1::GetStatusResponse response;
    grpc::Status status = stub_->GetStatus(Context().get(), request, &response);
    if (!status.ok()) return CallError(status);
    return std::move(*response.mutable_status());
  }

  absl::Status ShowStatus() {
    if (args_.watch) return WatchStatus();
    ASSIGN_OR_RETURN(v1::ClusterStatus status, FetchStatus());
    if (args_.output == OutputFormat::kTable) {
      out_ << StatusPrinter::Table(status, absl::Now());
    } else {
      Print(StatusPrinter::ToJson(status));
    }
    return absl::OkStatus();
  }

  // `status --watch`: polls every --interval and prints the status whenever it changed, until
  // the epoch is READY (OK) or FAILED, --watch_timeout passed, a call failed or a stop signal
  // came (each an error; stop_signal() tells the last apart).
  absl::Status WatchStatus() {
    std::unique_ptr<SystemWatchClock> system_clock;
    WatchClock* clock = clock_;
    if (clock == nullptr) {
      system_clock = std::make_unique<SystemWatchClock>();
      clock = system_clock.get();
    }
    const absl::Time deadline = args_.watch_timeout > absl::ZeroDuration()
                                    ? clock->Now() + args_.watch_timeout
                                    : absl::InfiniteFuture();
    // With the real clock, the daemon's event stream cuts the poll short and its events are
    // shown in the table output; polling alone works against any daemon.
    std::unique_ptr<EventFeed> feed;
    if (clock_ == nullptr) feed = std::make_unique<EventFeed>(stub_.get(), args_.name);
    std::optional<std::string> last_key;
    while (true) {
      if (int stop = clock->StopSignal(); stop != 0) return Interrupted(stop);
      if (feed != nullptr) {
        for (const v1::Event& event : feed->Take()) {
          if (args_.output == OutputFormat::kTable) out_ << EventLine(event) << "\n";
        }
      }
      ASSIGN_OR_RETURN(v1::ClusterStatus status, FetchStatus());
      std::string key = ChangeKey(status, args_.output);
      if (key != last_key) {
        PrintWatched(status, clock->Now(), /*first=*/!last_key.has_value());
        last_key = std::move(key);
      }
      if (status.state() == v1::PHASE_READY) return absl::OkStatus();
      if (status.state() == v1::PHASE_FAILED) {
        return absl::AbortedError(absl::StrCat("cluster \"", args_.name, "\" FAILED",
                                               status.reason().empty() ? "" : ": ",
                                               status.reason()));
      }
      if (int stop = clock->StopSignal(); stop != 0) return Interrupted(stop);
      const absl::Time now = clock->Now();
      if (now >= deadline) return absl::DeadlineExceededError("timed out waiting for READY");
      const absl::Duration wait = std::min(args_.interval, deadline - now);
      if (feed == nullptr) {
        clock->Sleep(wait);
        continue;
      }
      const absl::Time until = clock->Now() + wait;
      while (clock->Now() < until && clock->StopSignal() == 0 && !feed->HasNews()) {
        clock->Sleep(std::min(absl::Milliseconds(20), until - clock->Now()));
      }
    }
  }

  absl::Status Interrupted(int signal) {
    stop_signal_ = signal;
    return absl::CancelledError(
        absl::StrCat("interrupted by ", SignalName(signal), " before the cluster was READY"));
  }

  // One snapshot of a watch: a table after a separator line with the time (none before the
  // first), a JSON object on one line, or a YAML document after "---".
  void PrintWatched(const v1::ClusterStatus& status, absl::Time now, bool first) {
    switch (args_.output) {
      case OutputFormat::kTable:
        if (!first) {
          out_ << "\n--- " << absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", now, absl::UTCTimeZone())
               << " ---\n";
        }
        out_ << StatusPrinter::Table(status, now);
        break;
      case OutputFormat::kJson:
        out_ << StatusPrinter::ToJson(status).dump(-1, ' ', false,
                                                   nlohmann::ordered_json::error_handler_t::replace)
             << "\n";
        break;
      case OutputFormat::kYaml:
        out_ << "---\n" << TopologyDocument::RenderYaml(StatusPrinter::ToJson(status));
        break;
    }
    out_.flush();
  }

  absl::Status Delete() {
    v1::DeleteClusterRequest request;
    request.set_name(args_.name);
    v1::DeleteClusterResponse response;
    grpc::Status status = stub_->DeleteCluster(Context().get(), request, &response);
    if (!status.ok()) return CallError(status);
    if (args_.output == OutputFormat::kTable) {
      out_ << "cluster/" << args_.name << " deleted\n";
    } else {
      Print({{"cluster", args_.name}, {"deleted", true}, {"last_epoch", response.last_epoch()}});
    }
    return absl::OkStatus();
  }

  absl::Status Reconfigure() {
    v1::ReconfigureRequest request;
    request.set_cluster(args_.name);
    if (args_.epoch.has_value()) {
      request.set_expected_epoch(*args_.epoch);
    } else {
      v1::GetClusterRequest get;
      get.set_name(args_.name);
      v1::GetClusterResponse cluster;
      grpc::Status status = stub_->GetCluster(Context().get(), get, &cluster);
      if (!status.ok()) return CallError(status);
      request.set_expected_epoch(cluster.cluster().epoch());
    }
    v1::Change* change = request.mutable_change();
    for (const auto& [dim, size] : args_.set_dims) (*change->mutable_set_dims())[dim] = size;
    for (int64_t rank : args_.exclude_ranks) change->add_exclude_ranks(rank);
    for (const std::string& node : args_.exclude_nodes) change->add_exclude_nodes(node);
    change->set_method(args_.method);
    request.set_dry_run(args_.dry_run);
    v1::ReconfigureResponse response;
    grpc::Status status = stub_->Reconfigure(Context().get(), request, &response);
    if (!status.ok()) return CallError(status);
    if (args_.output != OutputFormat::kTable) {
      v1::ReconfigureResponse summary = response;
      // The full plan is `splitctl plan`'s business; keep its header here.
      summary.mutable_plan()->clear_groups();
      summary.mutable_plan()->clear_topology();
      std::string json;
      google::protobuf::util::JsonPrintOptions options;
      options.preserve_proto_field_names = true;
      if (!google::protobuf::util::MessageToJsonString(summary, &json, options).ok()) {
        return absl::InternalError("cannot render the reply as JSON");
      }
      Print(nlohmann::ordered_json::parse(json));
      return absl::OkStatus();
    }
    const v1::PlanDiff& diff = response.diff();
    out_ << "cluster/" << args_.name << " "
         << (response.applied() ? "reconfigured" : "would be reconfigured (dry run)") << ": epoch "
         << diff.from_epoch() << " -> " << diff.to_epoch() << ", world " << diff.from_world_size()
         << " -> " << diff.to_world_size() << "\n"
         << response.reason() << "\n";
    TablePrinter kinds({"KIND", "KEPT", "REMOVED", "ADDED"});
    for (const v1::KindDiff& kind : diff.kinds()) {
      kinds.AddRow({kind.kind(), absl::StrCat(kind.kept()), absl::StrCat(kind.removed()),
                    absl::StrCat(kind.added())});
    }
    out_ << kinds.Render();
    if (diff.moves_size() > 0) {
      TablePrinter moves({"MEMBER", "FROM RANK", "TO RANK"});
      for (const v1::MemberMove& move : diff.moves()) {
        moves.AddRow({move.member_id(), move.from_rank() < 0 ? "-" : absl::StrCat(move.from_rank()),
                      move.to_rank() < 0 ? "-" : absl::StrCat(move.to_rank())});
      }
      out_ << "\n" << moves.Render();
    }
    return absl::OkStatus();
  }

  const SplitctlArgs& args_;
  std::istream& in_;
  std::ostream& out_;
  WatchClock* const clock_;  // null: SystemWatchClock
  std::unique_ptr<v1::ControlService::Stub> stub_;
  int stop_signal_ = 0;
};

// The channel to args.address: plaintext or TLS as the flags (and $SPLITD_TLS_*,
// $SPLITD_PLAINTEXT) say, carrying the token of --token_file ($SPLITD_TOKEN_FILE).
// INVALID_ARGUMENT naming the flag when they conflict or a file is unreadable or invalid.
absl::StatusOr<std::shared_ptr<grpc::Channel>> DaemonChannel(const SplitctlArgs& args) {
  ClientTlsOptions tls;
  tls.plaintext = args.plaintext;
  tls.tls = args.tls;
  tls.ca_file = args.tls_ca;
  tls.cert_file = args.tls_cert;
  tls.key_file = args.tls_key;
  tls.server_name = args.tls_server_name;
  tls = WithEnvironmentDefaults(tls);
  // A failed handshake is the one-line error splitctl prints; gRPC's own line would be a second.
  DiscardGrpcLogs();
  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
  ASSIGN_OR_RETURN(ClientSecurity security,
                   MakeClientSecurity(tls, FirstAddress(args.address), &channel_args));
  ASSIGN_OR_RETURN(std::string token,
                   ReadClientToken(args.token_file, "SPLITD_TOKEN_FILE", "token_file"));
  std::string target;
  ASSIGN_OR_RETURN(bool replicated, ReplicatedTarget(args.address, &target, &channel_args));
  (void)replicated;
  return CreateChannelWithToken(target, security.credentials, channel_args, token);
}

}  // namespace

int RunSplitctl(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                std::ostream& err, absl::string_view default_address, WatchClock* clock) {
  absl::StatusOr<SplitctlArgs> parsed = SplitctlArgs::Parse(args, default_address);
  if (!parsed.ok()) {
    err << "error: " << OneLine(parsed.status().message())
        << " (run \"splitctl --help\" for usage)\n";
    return kExitUsage;
  }
  if (parsed->help) {
    out << SplitctlUsage();
    return kExitOk;
  }
  if (parsed->version) {
    out << SplitctlVersion();
    return kExitOk;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = DaemonChannel(*parsed);
  if (!channel.ok()) {
    err << "error: " << OneLine(channel.status().message()) << "\n";
    return kExitUsage;
  }
  Splitctl splitctl(*parsed, *std::move(channel), in, out, clock);
  absl::Status status = splitctl.Run();
  out.flush();
  if (!status.ok()) {
    err << "error: " << OneLine(status.message()) << "\n";
    return splitctl.stop_signal() != 0 ? 128 + splitctl.stop_signal() : kExitError;
  }
  return kExitOk;
}

int RunSplitctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const char* env_address = std::getenv("SPLITD_ADDR");
  return RunSplitctl(
      args, std::cin, out, err,
      env_address != nullptr && env_address[0] != '\0' ? env_address : kDefaultAddress);
}

}  // namespace splitd::cli
