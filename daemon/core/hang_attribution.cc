#include "daemon/core/hang_attribution.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace splitd::core {
namespace {

constexpr char kAgent[] = "agent";
constexpr char kWorkload[] = "workload";

absl::Time FromTimestamp(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

// Keys as a member's status shows them: the first few, then how many more.
std::vector<std::string> ShownKeys(const std::vector<std::string>& keys) {
  std::vector<std::string> shown(
      keys.begin(),
      keys.begin() + static_cast<std::ptrdiff_t>(std::min(keys.size(), kMaxWaitingKeysShown)));
  if (keys.size() > kMaxWaitingKeysShown) {
    shown.push_back(absl::StrCat("(+", keys.size() - kMaxWaitingKeysShown, " more)"));
  }
  return shown;
}

// "a, b, c, d (+3 more)".
std::string KeysText(const std::vector<std::string>& keys) {
  const size_t shown = std::min(keys.size(), kMaxWaitingKeysShown);
  std::string text =
      absl::StrJoin(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(shown), ", ");
  if (keys.size() > shown) absl::StrAppend(&text, " (+", keys.size() - shown, " more)");
  return text;
}

bool CannotProgress(const v1::MemberStatus& member) {
  return member.state() == v1::MEMBER_STATE_LOST || member.state() == v1::MEMBER_STATE_GONE;
}

// A ranked member's phase on `layer` and since when.
std::pair<v1::Phase, absl::Time> LayerPhase(const v1::MemberStatus& member, bool workload) {
  const absl::Time agent_since = FromTimestamp(member.phase_since());
  if (!workload) return {member.phase(), agent_since};
  if (!member.has_workload()) return {v1::PHASE_PLANNED, agent_since};
  // The workload starts when its agent hands it the plan, at the agent's READY.
  return {member.workload().phase(),
          std::max(FromTimestamp(member.workload().phase_since()), agent_since)};
}

// The layer the epoch waits on: "agent", "workload", or "" for none.
const char* AwaitedLayer(const v1::ClusterStatus& status) {
  bool workload_reported = false;
  bool workload_short = false;
  for (const v1::MemberStatus& member : status.members()) {
    if (member.rank() < 0) continue;
    if (member.phase() != v1::PHASE_READY) return kAgent;
    workload_reported = workload_reported || member.has_workload();
    workload_short =
        workload_short || !member.has_workload() || member.workload().phase() != v1::PHASE_READY;
  }
  if (!workload_short) return "";
  if (status.readiness() == kWorkload || workload_reported) return kWorkload;
  return "";
}

struct Candidate {
  int index = 0;  // into status.members
  v1::Phase phase = v1::PHASE_UNSPECIFIED;
  absl::Time since;
  bool blocked = false;
};

}  // namespace

void HangAttribution::Fill(const WaitingKeys& waiting, absl::Time now, v1::ClusterStatus* status) {
  for (v1::MemberStatus& member : *status->mutable_members()) {
    auto it = waiting.find(member.member_id());
    if (it == waiting.end()) continue;
    for (std::string& key : ShownKeys(it->second)) member.add_waiting_for_keys(std::move(key));
  }
  status->clear_waiting_on();
  status->set_waiting_on_total(0);
  const v1::Phase state = status->state();
  if (!(state >= v1::PHASE_PLANNED && state <= v1::PHASE_VALIDATING) &&
      state != v1::PHASE_DEGRADED) {
    return;
  }
  const char* layer = AwaitedLayer(*status);
  const bool workload = layer == kWorkload;

  std::vector<Candidate> lost;
  std::vector<Candidate> free;
  std::vector<Candidate> blocked;
  for (int i = 0; i < status->members_size(); ++i) {
    const v1::MemberStatus& member = status->members(i);
    if (member.rank() < 0) continue;
    const auto [phase, since] = LayerPhase(member, workload);
    Candidate candidate{i, phase, since, member.waiting_for_keys_size() > 0};
    if (CannotProgress(member)) {
      lost.push_back(candidate);
    } else if (*layer != '\0' && phase != v1::PHASE_READY) {
      (candidate.blocked ? blocked : free).push_back(candidate);
    }
  }
  // Blocked ranks wait on the others; only when every candidate is blocked are they the news.
  std::vector<Candidate> listed = std::move(lost);
  const size_t lost_count = listed.size();
  const std::vector<Candidate>& rest = free.empty() ? blocked : free;
  listed.insert(listed.end(), rest.begin(), rest.end());
  status->set_waiting_on_total(static_cast<int64_t>(listed.size()));

  auto longest_first = [status](const Candidate& a, const Candidate& b) {
    return std::make_tuple(a.since, status->members(a.index).rank()) <
           std::make_tuple(b.since, status->members(b.index).rank());
  };
  std::sort(listed.begin(), listed.begin() + static_cast<std::ptrdiff_t>(lost_count),
            longest_first);
  const size_t shown = std::min(listed.size(), static_cast<size_t>(kMaxWaitingRanks));
  if (shown > lost_count) {
    std::partial_sort(listed.begin() + static_cast<std::ptrdiff_t>(lost_count),
                      listed.begin() + static_cast<std::ptrdiff_t>(shown), listed.end(),
                      longest_first);
  }
  for (size_t i = 0; i < shown; ++i) {
    const Candidate& candidate = listed[i];
    const v1::MemberStatus& member = status->members(candidate.index);
    v1::WaitingRank* out = status->add_waiting_on();
    out->set_rank(member.rank());
    out->set_member_id(member.member_id());
    out->set_pod(member.pod());
    out->set_node(member.node());
    out->set_layer(*layer != '\0' ? layer : kAgent);
    out->set_phase(candidate.phase);
    out->set_seconds(absl::ToDoubleSeconds(now - candidate.since));
    out->set_last_heartbeat_seconds(absl::ToDoubleSeconds(now - FromTimestamp(member.last_seen())));
    out->set_state(member.state());
    if (candidate.blocked) {
      out->set_detail(absl::StrCat("waiting for keys ", KeysText(waiting.at(member.member_id()))));
    } else if (workload && member.has_workload()) {
      out->set_detail(member.workload().reason());
    } else if (!workload) {
      out->set_detail(member.reason());
    }
  }
}

}  // namespace splitd::core
