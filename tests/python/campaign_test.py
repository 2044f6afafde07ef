"""A short seeded fault campaign on the multi-host bed (tests/netns/campaign.py): kill -9,
SIGSTOP/SIGCONT of agents and of the daemon, hosts cut off and healed, Reconfigure calls; its
history must pass every check of tests/netns/history.py. Longer runs: docs/reliability.md.
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
    def test_a_seeded_campaign_keeps_every_property_of_its_history(self):
        bindir = os.path.dirname(os.path.dirname(binaries()["splitd"]))
        out = tempfile.mkdtemp(prefix="splitd-campaign-", dir="/tmp")
        printed = io.StringIO()
        try:
            with redirect_stdout(printed):
                code = campaign.main(["--bin", bindir, "--seed", str(SEED), "--steps", "16",
                                      "--duration", "40", "--out", out])
            self.assertEqual(code, 0, printed.getvalue() + logs_tail(out))
            with open(os.path.join(out, "history.json")) as f:
                record = json.load(f)
            faults = {f["action"] for f in record["faults"]}
            self.assertLessEqual(set(campaign.ACTIONS), faults, printed.getvalue())
            self.assertGreater(len({s["status"]["epoch"] for s in record["statuses"]}), 2)
        finally:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
