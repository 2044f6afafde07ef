"""The workload path on GPUs: a real splitd, one splitd-agent and one PyTorch process per GPU (up
to 4; TP2 x DP where it can), `readiness: workload`, `preflight: false`, every kind on
cuda:nccl. Each process starts a device-bound world with splitd_groups.init_world(plan, "nccl",
device_id=...) on the agent's store and creates the groups with create_groups, which takes
split_group where this PyTorch has it (2.5 and later; its split clones the store) and validates
each group with an all-reduce on the GPU.

Skipped (and said so) where this interpreter's torch sees no GPU or has no NCCL, as with
Debian's CPU-only PyTorch 1.13; on the GPU machine (PyTorch 2.11) it runs.
"""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from splitd_procs import ClusterTestCase, poll, workload_env  # noqa: E402

WORKER = os.path.join(HERE, "workload_worker.py")


def nccl_flags():
    """--nccl_library for the agents: the NCCL PyTorch ships with, where it ships one."""
    try:
        import nvidia
    except ImportError:
        return []
    for root in nvidia.__path__:
        path = os.path.join(root, "nccl", "lib", "libnccl.so.2")
        if os.path.exists(path):
            return ["--nccl_library", path]
    return []


def gpus():
    try:
        import torch
        import torch.distributed as dist
    except ImportError:
        return 0
    if not (torch.cuda.is_available() and dist.is_available() and dist.is_nccl_available()):
        return 0
    return torch.cuda.device_count()


@unittest.skipIf(gpus() == 0, "needs torch with CUDA and NCCL and at least one GPU")
class GpuWorkloadTest(ClusterTestCase):
    NAME = "gpu"
    PREFIX = "splitd-gpu-"

    @classmethod
    def _prepare(cls):
        import torch
        import torch.distributed as dist
        cls.world = 4 if gpus() >= 4 else (2 if gpus() >= 2 else 1)
        cls.tp = 2 if cls.world >= 2 else 1
        cls.has_split = hasattr(dist, "split_group")
        cls.torch_version = torch.__version__

    @classmethod
    def _run(cls):
        c = cls.cluster
        c.start_daemon()
        c.apply(f"cluster: {cls.NAME}\n"
                f"dims: [{{name: tp, size: {cls.tp}}}, {{name: dp, size: {cls.world // cls.tp}}}]\n"
                "groups: [{name: tp, dims: [tp]}, {name: dp, dims: [dp]}]\n"
                'backend: "cuda:nccl"\nreadiness: workload\npreflight: false\n')
        env = workload_env({"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
                            "NVSHMEM_DISABLE_NVLS": "1"})
        workers = []
        for i in range(cls.world):
            c.start_agent(i, extra=nccl_flags())
            workers.append(c.spawn(f"worker-{i}", [
                sys.executable, WORKER, "--plan_file", c.plan_file(i),
                "--out", os.path.join(c.dir, f"out-{i}.jsonl"), "--timeout", "120",
                "--backend", "nccl", "--device", "cuda", "--local_index", str(i)], env=env))
        poll(lambda: all(w.poll() is not None for w in workers), "every workload to finish",
             alive=[("splitd", c.daemon)], timeout=300)
        cls.exit_codes = [w.returncode for w in workers]
        cls.records = [c.records(os.path.join(c.dir, f"out-{i}.jsonl"))
                       for i in range(cls.world)]
        cls.status = poll(lambda: (lambda s: s if s["state"] == "READY" else None)(c.status()),
                          "the epoch to be READY", timeout=60)

    def test_every_process_forms_a_device_bound_world_on_the_agents_store(self):
        self.assertEqual(self.exit_codes, [0] * self.world, self.cluster.logs_tail())
        for i, records in enumerate(self.records):
            record = records[0]
            self.assertEqual(record["rank"], i)
            self.assertTrue(record["default_store_is_ours"], record)
            self.assertGreater(record["store_keys"], 0, record)
            self.assertEqual(record["bound_device"], f"cuda:{i}", record)

    def test_kinds_are_split_where_pytorch_can_and_all_reduce_on_the_gpu(self):
        for records in self.records:
            record = records[0]
            how = [line for line in record["log"] if ": kind " in line]
            self.assertEqual(len(how), 2, record["log"])
            want = "split_group" if self.has_split else "new_group"
            for line in how:
                self.assertIn(want, line)
            for kind, got in record["groups"].items():
                self.assertIn("nccl", got["backend"])
                self.assertEqual(got["allreduce"],
                                 [float(sum(r + 1 for r in got["ranks"]))] * 4, kind)

    def test_status_shows_every_workload_ready(self):
        self.assertEqual(self.status["state"], "READY")
        for member in self.status["members"]:
            workload = member["workload"]
            self.assertEqual(workload["phase"], "READY", member)
            for group in workload["groups"]:
                size = self.tp if group["kind"] == "tp" else self.world // self.tp
                self.assertEqual(group["allreduce_value"], float(size), group)


if __name__ == "__main__":
    unittest.main()
