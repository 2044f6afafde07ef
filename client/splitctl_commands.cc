#include "client/splitctl_commands.h"

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cluster_printer.h"
#include "client/plan_printer.h"
#include "client/splitctl_args.h"
#include "client/status_printer.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "common/topology_document.h"
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

// Carries out one parsed command against the daemon at args.address.
class Splitctl {
 public:
  Splitctl(const SplitctlArgs& args, std::istream& in, std::ostream& out)
      : args_(args), in_(in), out_(out) {
    grpc::ChannelArguments channel_args;
    channel_args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
    stub_ = v1::ControlService::NewStub(
        grpc::CreateCustomChannel(args_.address, grpc::InsecureChannelCredentials(), channel_args));
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
      case Command::kNone:
        break;
    }
    return absl::InvalidArgumentError("no command given");
  }

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
        return absl::Status(status.code(), reason);
    }
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

  absl::Status ShowStatus() {
    v1::GetStatusRequest request;
    request.set_cluster(args_.name);
    v1::GetStatusResponse response;
    grpc::Status status = stub_->GetStatus(Context().get(), request, &response);
    if (!status.ok()) return CallError(status);
    if (args_.output == OutputFormat::kTable) {
      out_ << StatusPrinter::Table(response.status());
    } else {
      Print(StatusPrinter::ToJson(response.status()));
    }
    return absl::OkStatus();
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

  const SplitctlArgs& args_;
  std::istream& in_;
  std::ostream& out_;
  std::unique_ptr<v1::ControlService::Stub> stub_;
};

}  // namespace

int RunSplitctl(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                std::ostream& err, absl::string_view default_address) {
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
  absl::Status status = Splitctl(*parsed, in, out).Run();
  out.flush();
  if (!status.ok()) {
    err << "error: " << OneLine(status.message()) << "\n";
    return kExitError;
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
