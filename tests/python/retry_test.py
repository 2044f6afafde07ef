"""elastic.retries with real processes: a FAILED epoch whose members are all alive starts again by
itself. The daemon and two splitd-agents on 127.0.0.1 (TP2). Agent 0 is stopped (SIGSTOP) right
after it registers, so when agent 1 completes the world the 2 s bootstrap deadline fails epoch 1;
agent 0 then continues, and 1.5 s after the failure the daemon starts the same layout as epoch 2,
which is READY. Needs SPLITD_BIN."""

import signal
import unittest

from splitd_procs import ClusterTestCase, poll

TOPOLOGY = """cluster: retry
dims:
  - {name: tp, size: 2}
method: split
backend: "cpu:gloo"
elastic: {retries: 1, retry_delay_ms: 1500}
deadlines: {bootstrap_ms: 2000}
"""


class RetryTest(ClusterTestCase):
    NAME = "retry"
    PREFIX = "splitd-retry-"

    @classmethod
    def _run(cls):
        c = cls.cluster
        c.start_daemon()
        c.apply(TOPOLOGY)
        first = c.start_agent(0, socket_flag=False)
        poll(lambda: c.status()["registered_members"] == 1, "agent 0 to register",
             alive=c.alive())
        first.send_signal(signal.SIGSTOP)
        c.start_agent(1, socket_flag=False)
        cls.failed = poll(lambda: (lambda s: s if s["state"] == "FAILED" else None)(c.status()),
                          "the bootstrap deadline to fail epoch 1", alive=c.alive())
        first.send_signal(signal.SIGCONT)
        cls.ready = poll(
            lambda: (lambda s: s if s["state"] == "READY" and s["epoch"] > 1 else None)(
                c.status()), "READY in a retried epoch", alive=c.alive())

    def test_the_deadline_failed_epoch_1(self):
        self.assertEqual(self.failed["epoch"], 1)
        self.assertIn("deadline bootstrap_ms 2000", self.failed["reason"])

    def test_the_same_layout_started_again_and_is_ready(self):
        self.assertEqual(self.ready["epoch"], 2)
        self.assertEqual(self.ready["world_size"], 2)
        self.assertIn("epoch 1 FAILED (", self.ready["epoch_reason"])
        self.assertIn("retry 1 of 1, the same layout at world 2", self.ready["epoch_reason"])
        self.assertEqual(self.ready["lost_members"], 0)


if __name__ == "__main__":
    unittest.main()
