"""Checks the history of a fault campaign (campaign.py): the cluster's status snapshots in time
order, every agent's plan file as it changed, the daemon's audit.jsonl, its restarts, the
acknowledged Reconfigure calls and the cluster as read after each restart. check() returns one
line per violation; an empty list means every property held:

- epochs only grow: in the status snapshots, and per cluster in audit.jsonl (kept across
  restarts), where every EPOCH_STARTED names a later epoch than the one before;
- one plan per epoch: every status and plan file naming an epoch gives it the same fingerprint;
- nothing acknowledged is lost across a restart of the daemon: every member seen a second before
  the kill is a member after it, and the declared dp is the last acknowledged one (or that of a
  Reconfigure sent since whose caller could not learn its outcome);
- no agent acts in an epoch it is not part of: a plan file READY (or FAILED) for an epoch names
  the rank its pod holds in that epoch's status;
- the cluster ends READY once faults stop, and every rank of that epoch holds a plan file of the
  epoch, its rank and fingerprint.
"""

import collections

DURABLE_S = 1.0  # a member seen this long before a kill has been acknowledged and stored


def check(record):
    violations = []
    violations += epochs_grow(record)
    violations += one_plan_per_epoch(record)
    violations += acknowledged_kept(record)
    violations += only_own_epochs(record)
    violations += ends_ready(record)
    return violations


def epochs_grow(record):
    out = []
    last = 0
    for snap in record["statuses"]:
        epoch = snap["status"]["epoch"]
        if epoch < last:
            out.append(f"status epoch went back from {last} to {epoch} at t={snap['t']:.2f}")
        last = max(last, epoch)
    last_seen = collections.defaultdict(int)
    last_started = collections.defaultdict(int)
    for event in record["audit"]:
        cluster, epoch = event.get("cluster", ""), int(event.get("epoch", 0))
        if epoch < last_seen[cluster]:
            out.append(f"audit: {cluster} event at epoch {epoch} after epoch {last_seen[cluster]}"
                       f" (sequence {event.get('sequence')})")
        last_seen[cluster] = max(last_seen[cluster], epoch)
        if event.get("kind") == "EVENT_KIND_EPOCH_STARTED":
            if epoch <= last_started[cluster]:
                out.append(f"audit: {cluster} epoch {epoch} started after epoch "
                           f"{last_started[cluster]} had")
            last_started[cluster] = max(last_started[cluster], epoch)
    return out


def fingerprints(record):
    """(epoch, fingerprint, source) of every status and plan file that names both."""
    for snap in record["statuses"]:
        status = snap["status"]
        if status.get("fingerprint"):
            yield status["epoch"], status["fingerprint"], "status"
    for entry in record["plans"]:
        plan = entry["plan"]
        if plan.get("fingerprint") and plan.get("epoch"):
            yield plan["epoch"], plan["fingerprint"], f"plan file of {entry['agent']}"


def one_plan_per_epoch(record):
    seen = {}
    out = []
    for epoch, fingerprint, source in fingerprints(record):
        first = seen.setdefault(epoch, (fingerprint, source))
        if first[0] != fingerprint:
            out.append(f"epoch {epoch} has two plans: {first[0]} ({first[1]}) and "
                       f"{fingerprint} ({source})")
    return out


def member_ids(status):
    return {m["member_id"] for m in status["members"]}


def declared_dp(cluster):
    topology = cluster.get("topology", cluster)
    for dim in topology.get("dims", []):
        if dim.get("name") == "dp":
            return int(dim.get("size", 0))
    return None


def acknowledged_kept(record):
    out = []
    statuses = record["statuses"]
    for restart in record["restarts"]:
        killed, started = restart["killed"], restart["started"]
        if started is None:
            continue
        before = [s for s in statuses if s["t"] <= killed - DURABLE_S]
        after = [s for s in statuses if s["t"] >= started]
        if before and after:
            missing = member_ids(before[-1]["status"]) - member_ids(after[0]["status"])
            if missing:
                out.append(f"members {sorted(missing)} gone after the restart at "
                           f"t={started:.2f}")
        acks = [a for a in record["acks"] if a["t"] <= killed]
        reads = [c for c in record["clusters"] if c["t"] >= started]
        if acks and reads:
            # Only a read before any later Reconfigure shows what the restart kept. A Reconfigure
            # whose outcome its caller could not know (UNAVAILABLE, a timeout) since the last
            # acknowledged one may have applied too.
            later_acks = [a for a in record["acks"] if started <= a["t"] <= reads[0]["t"]]
            unknown = {u["dp"] for u in record.get("unknown", [])
                       if acks[-1]["t"] <= u["t"] <= reads[0]["t"]}
            dp = declared_dp(reads[0]["cluster"])
            if not later_acks and dp is not None and dp != acks[-1]["dp"] and dp not in unknown:
                out.append(f"declared dp {dp} after the restart at t={started:.2f}; the last "
                           f"acknowledged was {acks[-1]['dp']}")
    return out


def only_own_epochs(record):
    """Every plan file READY or FAILED for (epoch, rank) names a rank its pod held in a status of
    that epoch; epochs no status snapshot shows with ranks cannot be checked and are skipped."""
    holders = collections.defaultdict(dict)  # epoch -> pod -> set of ranks
    for snap in record["statuses"]:
        status = snap["status"]
        for member in status["members"]:
            if member["rank"] >= 0:
                holders[status["epoch"]].setdefault(member["pod"], set()).add(member["rank"])
    out = []
    for entry in record["plans"]:
        plan = entry["plan"]
        if plan.get("state") not in ("READY", "FAILED") or plan.get("rank", -1) < 0:
            continue
        epoch = plan["epoch"]
        if epoch not in holders:
            continue
        ranks = holders[epoch].get(entry["agent"], set())
        if plan["rank"] not in ranks:
            out.append(f"{entry['agent']} wrote a {plan['state']} plan for epoch {epoch} rank "
                       f"{plan['rank']}, which it does not hold in that epoch (holds "
                       f"{sorted(ranks)})")
    return out


def missing_plans(status, plans):
    """Ranked pods of `status` whose plan file is not READY at its epoch, rank and fingerprint."""
    missing = []
    for member in status["members"]:
        if member["rank"] < 0:
            continue
        plan = plans.get(member["pod"]) or {}
        if (plan.get("epoch"), plan.get("rank"), plan.get("fingerprint"), plan.get("state")) != (
                status["epoch"], member["rank"], status["fingerprint"], "READY"):
            missing.append(member["pod"])
    return missing


def ends_ready(record):
    final = record.get("final")
    if not final:
        return ["no status once the faults stopped"]
    if final["state"] != "READY":
        return [f"not READY once the faults stopped: {final['state']} {final.get('reason', '')}"]
    missing = missing_plans(final, record["final_plans"])
    return [f"READY epoch {final['epoch']} without a matching plan file on {missing}"] \
        if missing else []


def summary(record):
    """Counts that say what the history covered."""
    kinds = collections.Counter(f["action"] for f in record["faults"])
    epochs = {s["status"]["epoch"] for s in record["statuses"]}
    return {"faults": dict(kinds), "statuses": len(record["statuses"]),
            "plan_files": len(record["plans"]), "audit_events": len(record["audit"]),
            "epochs": len(epochs), "restarts": len(record["restarts"])}
