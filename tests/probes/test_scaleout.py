"""probes.scaleout on a private 2-CPU Ray cluster that this module starts and stops.

Planted checks: the records are exactly the single-process ones; a worker SIGKILLed mid-task loses
nothing and duplicates nothing; a resumed run only does the missing keys; errors surface with their
message; bad addresses and short clusters fail at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from probes.errors import InputError
from probes.runs import JsonlLog
from probes.scaleout import RayConfig, check_resources, cluster, run_keyed

ray = pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[scale]')")
cloudpickle = pytest.importorskip("ray.cloudpickle")
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this test file

CFG = RayConfig(workers=2, num_cpus=1)


@pytest.fixture(scope="module")
def ray_cluster():
    with cluster(CFG) as resources:
        yield resources


def make_square(shared):
    """A worker whose 'model' is the shared offset; each task sleeps so tasks overlap."""
    offset, delay, pid_dir = shared

    def work(x):
        if pid_dir:
            Path(pid_dir, f"{x}.pid").write_text(str(os.getpid()))
        time.sleep(delay)
        if x == "bad":
            raise InputError("payload 'bad' is not a number: give integers")
        return {"value": x * x + offset, "pid": os.getpid()}

    return work


def failing_factory(shared):
    raise InputError("model 'nope' is not packaged: run sublens models list")


def _values(log):
    return {r["key"]: r["value"] for r in log.read()}


def test_records_match_single_process(ray_cluster, tmp_path):
    tasks = [(f"k{i}", i) for i in range(8)]
    log = JsonlLog(tmp_path / "log.jsonl")
    stats = run_keyed(tasks, make_square, log, CFG, shared=(3, 0.2, None), progress=False)
    single = {k: make_square((3, 0, None))(x)["value"] for k, x in tasks}
    assert _values(log) == single
    assert stats.done == 8 and stats.skipped == 0 and not stats.failed
    assert sum(stats.per_worker.values()) == 8  # (a loaded machine may start the second worker late)


def test_resume_runs_only_missing_keys(ray_cluster, tmp_path):
    tasks = [(f"k{i}", i) for i in range(8)]
    log = JsonlLog(tmp_path / "log.jsonl")
    for k, x in tasks[:3]:
        log.append({"key": k, "value": x * x + 3, "pid": 0})
    with open(log.path, "ab") as f:
        f.write(b'{"key": "k3", "val')  # a driver killed mid-write
    stats = run_keyed(tasks, make_square, log, CFG, shared=(3, 0.05, None), progress=False)
    assert stats.skipped == 3 and stats.done == 5
    keys = [r["key"] for r in log.read()]
    assert sorted(keys) == sorted(k for k, _ in tasks) and len(keys) == len(set(keys))


def test_sigkilled_worker_loses_and_duplicates_nothing(ray_cluster, tmp_path):
    tasks = [(f"k{i}", i) for i in range(8)]
    log = JsonlLog(tmp_path / "log.jsonl")
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    killed: list[int] = []

    def killer():
        deadline = time.time() + 60
        while time.time() < deadline:
            f = pid_dir / "4.pid"
            if f.exists() and f.read_text():
                pid = int(f.read_text())
                os.kill(pid, signal.SIGKILL)  # mid-task: the task sleeps 1 s after writing its pid
                killed.append(pid)
                return
            time.sleep(0.02)

    t = threading.Thread(target=killer)
    t.start()
    stats = run_keyed(tasks, make_square, log, CFG, shared=(0, 1.0, str(pid_dir)), progress=False)
    t.join()
    assert killed, "the worker running task 4 was never seen"
    keys = [r["key"] for r in log.read()]
    assert sorted(keys) == sorted(k for k, _ in tasks) and len(keys) == len(set(keys))
    assert _values(log) == {k: x * x for k, x in tasks}
    assert stats.retried >= 1 and not stats.failed


def test_task_error_surfaces_with_its_message(ray_cluster, tmp_path):
    log = JsonlLog(tmp_path / "log.jsonl")
    with pytest.raises(InputError, match="payload 'bad' is not a number"):
        run_keyed([("a", 1), ("b", "bad")], make_square, log, CFG, shared=(0, 0, None), progress=False)


def test_worker_setup_error_surfaces_with_its_message(ray_cluster, tmp_path):
    log = JsonlLog(tmp_path / "log.jsonl")
    with pytest.raises(InputError, match="model 'nope' is not packaged"):
        run_keyed([("a", 1)], failing_factory, log, CFG, progress=False)
    assert log.read() == []


def test_nothing_to_do_starts_no_worker(tmp_path):
    log = JsonlLog(tmp_path / "log.jsonl")
    log.append({"key": "a", "value": 1})
    stats = run_keyed([("a", 1)], make_square, log, CFG, progress=False)  # no cluster needed
    assert stats.skipped == 1 and stats.done == 0


@pytest.mark.parametrize(
    "address, message",
    [
        ("127.0.0.1:1", "No Ray cluster answers at 127.0.0.1:1"),
        ("ray://127.0.0.1:1", "No Ray cluster answers at ray://127.0.0.1:1"),
        ("localhost", "is not a Ray address"),
        ("ray://host:port", "is not a Ray address"),
    ],
)
def test_bad_address_fails_fast(address, message):
    t = time.time()
    with pytest.raises(InputError, match=message), cluster(RayConfig(address=address)):
        pass
    assert time.time() - t < 10


@pytest.mark.parametrize(
    "cfg, resources, message",
    [
        (RayConfig(workers=3), {"CPU": 2.0}, "has 2 CPUs; 3 workers × 1 CPU need 3"),
        (RayConfig(workers=1, num_gpus=1), {"CPU": 8.0}, "reports 0 GPUs"),
        (RayConfig(workers=2, num_gpus=0.5), {"CPU": 8.0, "GPU": 0.5}, "reports 0.5 GPUs"),
    ],
)
def test_short_cluster_is_refused(cfg, resources, message):
    with pytest.raises(InputError, match=message):
        check_resources(cfg, resources)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"workers": 0}, "--workers 0"),
        ({"num_cpus": 0}, "num_cpus > 0"),
        ({"max_retries": -1}, "max_retries"),
    ],
)
def test_bad_config_is_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        RayConfig(**kwargs)
