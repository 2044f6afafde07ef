"""Short seeded fault campaigns on the multi-host bed (tests/netns/campaign.py): kill -9,
SIGSTOP/SIGCONT of agents and of the daemon, hosts cut off and healed, Reconfigure calls, and
with daemon replicas over etcd, etcd members killed; each history must pass every check of
tests/netns/history.py. Longer runs: docs/reliability.md.
Needs root, iproute2 and SPLITD_BIN; skipped without root."""

import io
import json
import os
import shutil
import sys
import tempfile
import unittest
from contextlib import redirect_stdout

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "netns"))

import campaign  # noqa: E402
from multihost_test import CAN_MAKE_HOSTS, WHY_NOT  # noqa: E402
from splitd_procs import binaries, logs_tail  # noqa: E402

SEED = 20261207


@unittest.skipUnless(CAN_MAKE_HOSTS, WHY_NOT)
class CampaignTest(unittest.TestCase):
    def run_campaign(self, extra, steps, duration, actions):
        bindir = os.path.dirname(os.path.dirname(binaries()["splitd"]))
        out = tempfile.mkdtemp(prefix="splitd-campaign-", dir="/tmp")
        printed = io.StringIO()
        try:
            with redirect_stdout(printed):
                code = campaign.main(["--bin", bindir, "--seed", str(SEED), "--steps", str(steps),
                                      "--duration", str(duration), "--out", out, *extra])
            self.assertEqual(code, 0, printed.getvalue() + logs_tail(out))
            with open(os.path.join(out, "history.json")) as f:
                record = json.load(f)
            faults = {f["action"] for f in record["faults"]}
            self.assertLessEqual(set(actions), faults, printed.getvalue())
            self.assertGreater(len({s["status"]["epoch"] for s in record["statuses"]}), 2)
        finally:
            shutil.rmtree(out, ignore_errors=True)

    def test_a_seeded_campaign_keeps_every_property_of_its_history(self):
        self.run_campaign([], 16, 40, campaign.ACTIONS)

    def test_with_daemon_replicas_over_etcd_too(self):
        """Three replicas over a three-member etcd: daemon faults hit any replica, etcd members
        are killed and restarted, the replicas' hosts are cut off too."""
        self.run_campaign(["--replicas", "3"], 14, 35, campaign.REPLICA_ACTIONS)


if __name__ == "__main__":
    unittest.main()
