"""The agent's workload endpoint through splitd_groups, against a real splitd and a real
splitd-agent (world 1, Gloo): the plan with its layout, every torch.distributed.Store operation
of splitd_groups.Store (directly and through c10d's C++ PrefixStore), timeouts, requests the
endpoint must refuse (sent on raw sockets) after each of which it still answers, and the epoch
fence after `splitctl reconfigure`.

Needs SPLITD_BIN and torch importable by this interpreter (Debian's python3-torch).
"""

import dataclasses
import datetime
import json
import os
import socket
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "client", "python"))
sys.path.insert(0, HERE)

import splitd_groups  # noqa: E402
from splitd_procs import Cluster, ClusterTestCase, poll, require_torch  # noqa: E402

TOPOLOGY = """cluster: {name}
dims: [{{name: tp, size: 1}}]
groups: [{{name: tp, dims: [tp]}}]
backend: "cpu:gloo"
method: split
"""


def read_response(sock):
    """(status, headers, body) of one HTTP response, or None when the peer closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            if not data:
                return None
            raise AssertionError(f"connection closed inside the headers: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in
               (line.split(":", 1) for line in lines[1:] if ":" in line)}
    length = int(headers.get("content-length", "-1"))
    while length < 0 or len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body if length < 0 else body[:length]


def http_request(method, path, body=None, close=True):
    data = b"" if body is None else (body if isinstance(body, bytes) else
                                     json.dumps(body).encode())
    head = (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(data)}\r\n"
            f"Content-Type: application/json\r\n" + ("Connection: close\r\n" if close else ""))
    return head.encode() + b"\r\n" + data


class EndpointTestBase(ClusterTestCase):
    NAME = "ep"

    PREFIX = "splitd-ep-"

    @classmethod
    def _prepare(cls):
        require_torch()

    @classmethod
    def _run(cls):
        cls.cluster.start_daemon()
        cls.cluster.apply(TOPOLOGY.format(name=cls.NAME))
        cls.agent = cls.cluster.start_agent(0)
        cls.socket = cls.cluster.socket(0)
        cls.plan = splitd_groups.plan_from_agent(plan_file=cls.cluster.plan_file(0), timeout=60)

    def exchange(self, data, timeout=30):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(self.socket)
            sock.sendall(data)
            return read_response(sock)

    def assert_still_serving(self):
        status, _, body = self.exchange(http_request("GET", "/v1/status"))
        self.assertEqual(status, 200, body)
        doc = json.loads(body)
        self.assertEqual((doc["cluster"], doc["rank"]), (self.NAME, 0), doc)
        self.assertIsNone(self.agent.poll(), "the agent exited")

    def assert_error(self, response, http_status, code, *words):
        self.assertIsNotNone(response, "the endpoint closed the connection without an answer")
        status, _, body = response
        self.assertEqual(status, http_status, body)
        error = json.loads(body)["error"]
        self.assertEqual(error["code"], code, error)
        for word in words:
            self.assertIn(word, error["message"])
        return error["message"]


class PlanAndStoreTest(EndpointTestBase):
    NAME = "ep"

    def store(self, **kwargs):
        return splitd_groups.Store(self.plan, **kwargs)

    def test_plan_comes_with_its_layout_and_socket(self):
        plan = self.plan
        self.assertEqual((plan.cluster, plan.rank, plan.world_size, plan.state),
                         (self.NAME, 0, 1, "READY"))
        self.assertEqual(plan.socket, self.socket)
        self.assertIsNotNone(plan.layout, "the endpoint's plan has no layout")
        self.assertEqual(plan.layout.kinds, ("tp",))
        self.assertEqual(dict(plan.layout.groups), {"tp": ((0,),)})
        self.assertEqual(dict(plan.layout.backends), {"tp": "cpu:gloo"})

    def test_plan_long_poll_for_a_later_epoch_times_out(self):
        with self.assertRaisesRegex(TimeoutError, f"no READY plan of an epoch after "
                                                  f"{self.plan.epoch}"):
            splitd_groups.plan_from_agent(socket=self.socket, after=self.plan.epoch,
                                          timeout=0.5)

    def test_set_then_get_returns_the_same_bytes(self):
        store = self.store()
        store.set("bytes", b"\x00\xffsplitd")
        store.set("text", "caf\u00e9")
        self.assertEqual(store.get("bytes"), b"\x00\xffsplitd")
        self.assertEqual(store.get("text"), "caf\u00e9".encode())

    def test_get_waits_until_another_thread_sets_the_key(self):
        store = self.store()
        got = []
        reader = threading.Thread(target=lambda: got.append(store.get("later")))
        reader.start()
        time.sleep(0.3)
        self.assertTrue(reader.is_alive(), f"get returned before the key existed: {got}")
        store.set("later", b"now")
        reader.join(timeout=30)
        self.assertEqual(got, [b"now"])

    def test_get_of_a_missing_key_raises_a_timeout_error_after_the_store_timeout(self):
        store = self.store(timeout=datetime.timedelta(milliseconds=300))
        with self.assertRaises(TimeoutError) as caught:
            store.get("never-set")
        self.assertIsInstance(caught.exception, splitd_groups.StoreTimeoutError)
        self.assertEqual(caught.exception.code, "DEADLINE_EXCEEDED")
        self.assertIn("never-set", str(caught.exception))

    def test_wait_with_and_without_a_timeout(self):
        store = self.store(timeout=datetime.timedelta(seconds=30))
        with self.assertRaises(TimeoutError):
            store.wait(["w1"], datetime.timedelta(milliseconds=200))
        store.set("w1", b"1")
        store.wait(["w1"])
        store.wait(["w1"], datetime.timedelta(seconds=5))
        with self.assertRaises(TimeoutError):
            store.wait(["w1", "w2"], datetime.timedelta(milliseconds=200))

    def test_add_counts_atomically_across_threads(self):
        store = self.store()
        seen = []
        lock = threading.Lock()

        def adder():
            for _ in range(10):
                value = store.add("counter", 1)
                with lock:
                    seen.append(value)

        threads = [threading.Thread(target=adder) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        self.assertEqual(sorted(seen), list(range(1, 41)))
        self.assertEqual(store.add("counter", 0), 40)
        self.assertEqual(store.get("counter"), b"40")
        self.assertEqual(store.add("counter", -5), 35)

    def test_compare_set_swaps_only_on_the_expected_value(self):
        store = self.store()
        self.assertEqual(store.compare_set("cas-missing", b"x", b"y"), b"x")
        self.assertFalse(store.check(["cas-missing"]))
        self.assertEqual(store.compare_set("cas", b"", b"first"), b"first")
        self.assertEqual(store.compare_set("cas", b"wrong", b"second"), b"first")
        self.assertEqual(store.compare_set("cas", "first", "second"), b"second")
        self.assertEqual(store.get("cas"), b"second")

    def test_check_delete_and_num_keys(self):
        store = self.store()
        before = store.num_keys()
        store.set("nk-a", b"1")
        store.set("nk-b", b"2")
        self.assertEqual(store.num_keys(), before + 2)
        self.assertTrue(store.check(["nk-a", "nk-b"]))
        self.assertFalse(store.check(["nk-a", "nk-missing"]))
        self.assertTrue(store.delete_key("nk-a"))
        self.assertFalse(store.delete_key("nk-a"))
        self.assertFalse(store.check(["nk-a"]))
        self.assertEqual(store.num_keys(), before + 1)

    def test_c10d_reaches_every_operation_through_its_prefix_store(self):
        import torch.distributed as dist
        store = self.store(timeout=datetime.timedelta(seconds=30))
        prefixed = dist.PrefixStore("c10d", store)  # C++ calls into the Python store
        prefixed.set("k", "v")
        self.assertEqual(prefixed.get("k"), b"v")
        self.assertEqual(store.get("c10d/k"), b"v")
        self.assertEqual(prefixed.add("n", 3), 3)
        self.assertEqual(prefixed.compare_set("k", "v", "w"), b"w")
        prefixed.wait(["k"])
        prefixed.wait(["k"], datetime.timedelta(seconds=5))
        self.assertEqual(prefixed.num_keys(), store.num_keys())
        self.assertTrue(prefixed.delete_key("k"))
        self.assertFalse(store.check(["c10d/k"]))
        with self.assertRaises(TimeoutError):
            prefixed.wait(["missing"], datetime.timedelta(milliseconds=200))

    def test_timeout_property_set_timeout_and_clone(self):
        store = self.store(timeout=datetime.timedelta(seconds=7))
        self.assertEqual(store.timeout, datetime.timedelta(seconds=7))
        store.set_timeout(datetime.timedelta(milliseconds=250))
        self.assertEqual(store.timeout, datetime.timedelta(milliseconds=250))
        started = time.monotonic()
        with self.assertRaises(TimeoutError):
            store.get("not-there")
        self.assertLess(time.monotonic() - started, 30)
        twin = store.clone()
        twin.set("cloned", b"yes")
        self.assertEqual(store.get("cloned"), b"yes")
        self.assertEqual(twin.timeout, store.timeout)

    def test_reports_reach_the_daemon(self):
        client = splitd_groups.Client(self.socket)
        answer = client.report(self.plan.epoch, 0, "READY",
                               groups=[{"kind": "tp", "phase": "READY", "allreduce_value": 1.0,
                                        "latency_us": 12.5}])
        self.assertIn("cluster_phase", answer)
        member = poll(lambda: next((m for m in self.cluster.status()["members"]
                                    if m.get("workload", {}).get("phase") == "READY"), None),
                      "the workload report in splitctl status")
        self.assertEqual(member["workload"]["groups"][0]["kind"], "tp")
        self.assertEqual(member["workload"]["groups"][0]["allreduce_value"], 1.0)
        with self.assertRaises(splitd_groups.EndpointError) as caught:
            client.report(self.plan.epoch, 5, "READY")
        self.assertEqual((caught.exception.code, caught.exception.http_status),
                         ("INVALID_ARGUMENT", 400))
        self.assertIn("rank must be 0", caught.exception.message)


class BadRequestTest(EndpointTestBase):
    NAME = "bad"

    def test_garbage_bytes_get_a_400_or_a_closed_connection(self):
        outcomes = {}
        for name, garbage in (("text", b"hello world\r\n\r\n"),
                              ("nul bytes", b"\x00\x01\x02 not http at all\r\n\r\n"),
                              ("binary", bytes(range(256)) * 4 + b"\r\n\r\n")):
            try:
                # A request that never ends is closed once idle for 10 s (the agent's limit).
                response = self.exchange(garbage, timeout=25)
            except ConnectionResetError:
                response = None  # closed while the rest was still being sent
            except socket.timeout:
                outcomes[name] = "neither an answer nor a closed connection within 25 s"
                continue
            outcomes[name] = "closed" if response is None else response[0]
        self.assertEqual({k: v for k, v in outcomes.items() if v not in ("closed", 400)}, {},
                         outcomes)
        self.assert_still_serving()

    def test_a_body_over_4_mib_is_refused_with_413(self):
        body = b"{" + b" " * (4 << 20) + b"}"
        response = self.exchange(http_request("POST", "/v1/store/set", body))
        self.assert_error(response, 413, "RESOURCE_EXHAUSTED", "4 MiB")
        self.assert_still_serving()

    def test_unknown_path_is_404(self):
        self.assert_error(self.exchange(http_request("GET", "/v2/nothing")), 404, "NOT_FOUND",
                          "/v2/nothing")
        self.assert_still_serving()

    def test_unknown_store_operation_is_404(self):
        self.assert_error(self.exchange(http_request("POST", "/v1/store/frobnicate",
                                                     {"epoch": self.plan.epoch})),
                          404, "NOT_FOUND", "frobnicate")
        self.assert_still_serving()

    def test_a_method_the_path_does_not_take_is_405(self):
        self.assert_error(self.exchange(http_request("GET", "/v1/store/set")), 405,
                          "INVALID_ARGUMENT", "POST")
        self.assert_still_serving()

    def test_another_epoch_is_409_aborted_naming_both_epochs(self):
        other = self.plan.epoch + 41
        message = self.assert_error(
            self.exchange(http_request("POST", "/v1/store/set",
                                       {"epoch": other, "key": "k", "value": "eA=="})),
            409, "ABORTED", str(other), str(self.plan.epoch))
        self.assertNotIn("internal", message.lower())
        self.assert_still_serving()

    def test_invalid_json_is_400_naming_the_problem(self):
        self.assert_error(self.exchange(http_request("POST", "/v1/store/set",
                                                     b'{"epoch": 1, "key": ')),
                          400, "INVALID_ARGUMENT", "JSON")
        self.assert_error(self.exchange(http_request("POST", "/v1/store/set", b"[1, 2]")),
                          400, "INVALID_ARGUMENT", "object")
        self.assert_error(self.exchange(http_request("POST", "/v1/store/set",
                                                     {"epoch": self.plan.epoch, "value": "eA=="})),
                          400, "INVALID_ARGUMENT", "key")
        self.assert_error(self.exchange(http_request("POST", "/v1/store/set",
                                                     {"epoch": self.plan.epoch, "key": "k",
                                                      "value": "not base64!"})),
                          400, "INVALID_ARGUMENT", "base64")
        self.assert_error(self.exchange(http_request("POST", "/v1/report",
                                                     {"epoch": self.plan.epoch, "rank": 0,
                                                      "phase": "DANCING"})),
                          400, "INVALID_ARGUMENT", "DANCING")
        self.assert_still_serving()

    def test_a_client_that_leaves_during_a_get_does_not_stop_the_agent(self):
        key = "left-behind"
        for _ in range(3):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.socket)
            sock.sendall(http_request("POST", "/v1/store/get", {
                "epoch": self.plan.epoch, "keys": [key], "timeout_ms": 600000}, close=False))
            time.sleep(0.2)
            sock.close()
        self.assert_still_serving()
        store = splitd_groups.Store(self.plan, timeout=datetime.timedelta(seconds=30))
        store.set(key, b"arrived")
        self.assertEqual(store.get(key), b"arrived")

    def test_the_plan_long_poll_times_out_with_504(self):
        self.assert_error(self.exchange(http_request(
            "GET", f"/v1/plan?after={self.plan.epoch}&timeout_ms=200")), 504,
            "DEADLINE_EXCEEDED")
        self.assert_still_serving()


class DefaultSocketTest(unittest.TestCase):
    def test_without_the_flag_the_socket_is_the_plan_files_name_with_sock(self):
        cluster = Cluster("dflt", prefix="splitd-ds-")
        try:
            cluster.start_daemon()
            cluster.apply(TOPOLOGY.format(name="dflt"))
            agent = cluster.start_agent(0, socket_flag=False)
            poll(lambda: os.path.exists(cluster.plan_file(0)), "the agent's plan file",
                 alive=cluster.alive())
            with open(cluster.plan_file(0)) as f:
                named = json.load(f).get("socket")
            self.assertEqual(named, cluster.socket(0), "the plan file's socket")
            self.assertTrue(os.path.exists(cluster.socket(0)),
                            f"no socket at {cluster.socket(0)}: {os.listdir(cluster.agent_dir(0))}")
            plan = splitd_groups.plan_from_agent(plan_file=cluster.plan_file(0), timeout=30)
            self.assertEqual(plan.socket, cluster.socket(0))
            self.assertIsNone(agent.poll())
        finally:
            cluster.stop()
            cluster.remove()


class StaleEpochTest(EndpointTestBase):
    NAME = "stale"

    def test_a_store_of_an_old_epoch_gets_aborted_after_reconfigure(self):
        import torch.distributed as dist
        old = splitd_groups.Store(self.plan, timeout=datetime.timedelta(seconds=30))
        old.set("before", b"1")
        done = self.cluster.splitctl("reconfigure", self.NAME, "--method", "init")
        self.assertEqual(done.returncode, 0, done.stderr)
        new_plan = splitd_groups.plan_from_agent(socket=self.socket, after=self.plan.epoch,
                                                 timeout=60)
        self.assertEqual(new_plan.epoch, self.plan.epoch + 1)

        for call in (lambda: old.set("after", b"2"), lambda: old.get("before"),
                     lambda: old.add("n", 1), lambda: dist.PrefixStore("p", old).set("x", "y")):
            with self.assertRaises(splitd_groups.EpochError) as caught:
                call()
            error = caught.exception
            self.assertEqual((error.code, error.http_status), ("ABORTED", 409))
            self.assertEqual((error.epoch, error.agent_epoch), (self.plan.epoch, new_plan.epoch))
            self.assertIn(f"epoch {self.plan.epoch}", str(error))
            self.assertIn(f"epoch {new_plan.epoch}", str(error))

        new = splitd_groups.Store(new_plan, timeout=datetime.timedelta(seconds=30))
        self.assertFalse(new.check(["before"]), "the new epoch sees the old epoch's key")
        ahead = dataclasses.replace(new_plan, epoch=new_plan.epoch + 1)
        with self.assertRaises(splitd_groups.EpochError):
            splitd_groups.Store(ahead).set("k", b"v")


if __name__ == "__main__":
    unittest.main()
