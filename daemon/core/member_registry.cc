#include "daemon/core/member_registry.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace splitd::core {
namespace {

constexpr absl::string_view kFieldPrefix = "identity.";

absl::Status CheckText(absl::string_view field, const std::string& value, bool required) {
  if (required && value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must not be empty"));
  }
  if (static_cast<int64_t>(value.size()) > kMaxIdentityFieldLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " must be at most ", kMaxIdentityFieldLength, " bytes, got ", value.size()));
  }
  return absl::OkStatus();
}

absl::Status CheckIdentity(const std::string& cluster, const v1::MemberIdentity& identity) {
  if (identity.cluster() != cluster) {
    return absl::InvalidArgumentError(absl::StrCat("identity.cluster \"",
                                                   absl::CHexEscape(identity.cluster()),
                                                   "\" is not \"", cluster, "\""));
  }
  const std::pair<absl::string_view, const std::string*> fields[] = {
      {"pod", &identity.pod()},
      {"node", &identity.node()},
      {"host", &identity.host()},
      {"incarnation", &identity.incarnation()},
  };
  for (const auto& [name, value] : fields) {
    if (absl::Status status = CheckText(absl::StrCat(kFieldPrefix, name), *value, true);
        !status.ok()) {
      return status;
    }
  }
  if (identity.local_index() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("identity.local_index must be >= 0, got ", identity.local_index()));
  }
  return absl::OkStatus();
}

absl::Status CheckCapabilities(const v1::Capabilities& capabilities) {
  if (capabilities.backends_size() > kMaxBackends) {
    return absl::InvalidArgumentError(absl::StrCat("capabilities.backends must have at most ",
                                                   kMaxBackends, " entries, got ",
                                                   capabilities.backends_size()));
  }
  for (int i = 0; i < capabilities.backends_size(); ++i) {
    if (absl::Status status = CheckText(absl::StrCat("capabilities.backends[", i, "]"),
                                        capabilities.backends(i), true);
        !status.ok()) {
      return status;
    }
  }
  return CheckText("capabilities.device_type", capabilities.device_type(), false);
}

// The order in which members take ranks: node, then local index, then registration order.
bool RankOrder(const Member* a, const Member* b) {
  return std::make_tuple(a->identity.node(), a->identity.local_index(), a->order) <
         std::make_tuple(b->identity.node(), b->identity.local_index(), b->order);
}

}  // namespace

absl::StatusOr<const Member*> MemberRegistry::CheckAdmission(
    const plan::SplitPlan& plan, const v1::MemberIdentity& identity,
    const v1::Capabilities& capabilities) const {
  if (absl::Status status = CheckIdentity(plan.cluster, identity); !status.ok()) return status;
  if (absl::Status status = CheckCapabilities(capabilities); !status.ok()) return status;
  if (auto it = by_incarnation_.find(identity.incarnation()); it != by_incarnation_.end()) {
    const Member* member = it->second;
    if (member->identity.node() != identity.node() ||
        member->identity.local_index() != identity.local_index()) {
      return absl::FailedPreconditionError(
          absl::StrCat("incarnation ", identity.incarnation(), " registered before as node \"",
                       member->identity.node(), "\" local_index ", member->identity.local_index()));
    }
    if (member->liveness == Liveness::kExcluded) {
      return absl::FailedPreconditionError(
          absl::StrCat("member ", member->member_id, " (incarnation ", identity.incarnation(),
                       ") was excluded from cluster \"", plan.cluster, "\""));
    }
    return member;
  }
  if (auto it = by_slot_.find({identity.node(), identity.local_index()});
      it != by_slot_.end() && it->second->liveness == Liveness::kAlive) {
    const Member* other = it->second;
    return absl::AlreadyExistsError(absl::StrCat(
        "node \"", identity.node(), "\" local_index ", identity.local_index(),
        " is held by member ", other->member_id, " (pod \"", other->identity.pod(), "\")"));
  }
  if (AliveCount() >= plan.world_size + kMaxSpares) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cluster \"", plan.cluster, "\" has ", AliveCount(),
                     " alive members, the world size plus ", kMaxSpares, " spares"));
  }
  return nullptr;
}

Member* MemberRegistry::Add(const v1::MemberIdentity& identity,
                            const v1::Capabilities& capabilities, absl::Time now,
                            const std::string& session_token_sha256) {
  auto member = std::make_unique<Member>();
  member->order = static_cast<int64_t>(members_.size());
  member->member_id = absl::StrCat("m-", member->order);
  member->session_token_sha256 = session_token_sha256;
  member->identity = identity;
  member->capabilities = capabilities;
  member->registered = now;
  member->last_seen = now;
  Member* added = member.get();
  ++alive_;  // a new member is alive
  members_.push_back(std::move(member));
  by_incarnation_[identity.incarnation()] = added;
  by_id_[added->member_id] = added;
  by_slot_[{identity.node(), identity.local_index()}] = added;
  return added;
}

Member* MemberRegistry::FindByIncarnation(const std::string& incarnation) {
  auto it = by_incarnation_.find(incarnation);
  return it == by_incarnation_.end() ? nullptr : it->second;
}

Member* MemberRegistry::FindById(const std::string& member_id) {
  auto it = by_id_.find(member_id);
  return it == by_id_.end() ? nullptr : it->second;
}

const Member* MemberRegistry::FindById(const std::string& member_id) const {
  auto it = by_id_.find(member_id);
  return it == by_id_.end() ? nullptr : it->second;
}

Member* MemberRegistry::FindBySlot(const std::string& node, int64_t local_index) {
  auto it = by_slot_.find({node, local_index});
  return it == by_slot_.end() ? nullptr : it->second;
}

void MemberRegistry::SetLiveness(Member& member, Liveness liveness) {
  if (member.liveness == liveness) return;
  if (member.liveness == Liveness::kAlive) --alive_;
  if (liveness == Liveness::kAlive) ++alive_;
  member.liveness = liveness;
}

LivenessCounts MemberRegistry::CountByLiveness() const {
  LivenessCounts counts;
  for (const auto& member : members_) {
    switch (member->liveness) {
      case Liveness::kAlive:
        ++counts.alive;
        break;
      case Liveness::kLost:
        ++counts.lost;
        break;
      case Liveness::kExcluded:
        ++counts.excluded;
        break;
    }
  }
  return counts;
}

std::vector<std::string> MemberRegistry::DefaultAssignment(const plan::SplitPlan& plan) const {
  std::vector<const Member*> chosen;
  for (const auto& member : members_) {
    if (member->liveness != Liveness::kAlive) continue;
    if (static_cast<int64_t>(chosen.size()) < plan.world_size) chosen.push_back(member.get());
  }
  if (static_cast<int64_t>(chosen.size()) < plan.world_size) return {};
  std::sort(chosen.begin(), chosen.end(), RankOrder);
  std::vector<std::string> ids;
  ids.reserve(chosen.size());
  for (const Member* member : chosen) ids.push_back(member->member_id);
  return ids;
}

std::vector<Member*> MemberRegistry::Resolve(const std::vector<std::string>& ids) {
  std::vector<Member*> found;
  for (const std::string& id : ids) {
    if (Member* member = FindById(id); member != nullptr) found.push_back(member);
  }
  return found;
}

void MemberRegistry::AssignRanks(const std::vector<Member*>& chosen) {
  ClearRanks();
  by_rank_ = chosen;
  for (size_t rank = 0; rank < chosen.size(); ++rank)
    chosen[rank]->rank = static_cast<int64_t>(rank);
}

void MemberRegistry::ClearRanks() {
  for (const auto& member : members_) member->rank = -1;
  by_rank_.clear();
}

std::vector<std::string> MemberRegistry::Assignment() const {
  std::vector<std::string> ids;
  ids.reserve(by_rank_.size());
  for (const Member* member : by_rank_) ids.push_back(member->member_id);
  return ids;
}

std::vector<const Member*> MemberRegistry::Spares() const {
  std::vector<const Member*> spares;
  for (const auto& member : members_) {
    if (member->liveness == Liveness::kAlive && member->rank < 0) spares.push_back(member.get());
  }
  std::sort(spares.begin(), spares.end(), RankOrder);
  return spares;
}

std::vector<const Member*> MemberRegistry::Exclude(const std::vector<std::string>& member_ids) {
  std::vector<const Member*> excluded;
  for (const std::string& id : member_ids) {
    Member* member = FindById(id);
    if (member == nullptr || member->liveness == Liveness::kExcluded) continue;
    SetLiveness(*member, Liveness::kExcluded);
    excluded.push_back(member);
  }
  return excluded;
}

}  // namespace splitd::core
