"""Keyed jobs on Ray: many independent tasks, workers that keep a loaded model, one log the driver writes.

A long job (an attack campaign, an edit search, scans over several models) is a list of ``(key,
payload)`` tasks whose results are JSON records. :func:`run_keyed` runs the tasks not yet in a
:class:`~probes.runs.JsonlLog` on a pool of Ray actors. Each actor builds its state once (``make_worker``
loads the model and returns the function that evaluates one payload); the first actor starts alone so it
can fill shared caches (fitted probes, directions) before the others read them. The driver alone writes
the log, in completion order, one record per key; a task whose worker dies is re-run on a restarted or
another worker (up to ``max_retries`` times), so a SIGKILLed worker loses nothing and writes nothing
twice. A driver killed at any point resumes by calling :func:`run_keyed` again on the same log.

Ray runs whatever code its clients submit: bind a cluster to localhost or a private network you control.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from probes.errors import InputError
from probes.runs import JsonlLog

__all__ = ["KeyedStats", "RayConfig", "check_reachable", "check_resources", "cluster", "run_keyed"]

WorkerFactory = Callable[[Any], Callable[[Any], dict]]


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide to run (the ``--ray [ADDRESS]`` and ``--workers`` flags)."""

    address: str | None = None  # None: a private local cluster; "auto" or "ray://host:port": join one
    workers: int = 2  # actors, each holding its own copy of the model
    num_cpus: float = 1.0  # CPUs reserved per worker
    num_gpus: float = 0.0  # GPUs per worker (refused where the cluster reports none)
    max_retries: int = 3  # re-runs of a task whose worker died
    threads: int = 1  # torch threads per worker

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise InputError(f"--workers {self.workers}: need at least 1 Ray worker.")
        if self.num_cpus <= 0 or self.num_gpus < 0:
            raise InputError("Ray workers need num_cpus > 0 and num_gpus ≥ 0.")
        if self.max_retries < 0 or self.threads < 1:
            raise InputError("max_retries must be ≥ 0 and threads ≥ 1.")


@dataclass
class KeyedStats:
    """What a :func:`run_keyed` call did."""

    done: int = 0  # records written by this call
    skipped: int = 0  # keys already in the log
    retried: int = 0  # task re-runs after a worker died
    failed: list[str] = field(default_factory=list)  # keys that ran out of retries
    per_worker: dict[int, int] = field(default_factory=dict)  # worker index → records
    seconds: float = 0.0


def check_reachable(address: str) -> None:
    """Refuse at once an address nothing listens on (``ray.init`` would retry for minutes)."""
    if address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(
            f"--ray {address!r} is not a Ray address: use auto, HOST:PORT (the head's GCS port, "
            "6379 by default) or ray://HOST:PORT (the Ray Client port, 10001 by default)."
        )
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as err:
        raise InputError(
            f"No Ray cluster answers at {address} ({err.strerror or err}). Start one with "
            "`ray start --head` (workers join with `ray start --address HEAD:6379`), or use "
            "--ray local for a private cluster on this machine."
        ) from None


@contextmanager
def cluster(cfg: RayConfig) -> Iterator[dict]:
    """Connect to (or start) the cluster ``cfg`` names and check it can hold the workers.

    Yields ``ray.cluster_resources()``. A private cluster (``address=None``) is stopped on exit; a
    joined one is only disconnected from.
    """
    try:
        import ray
    except ImportError:
        raise InputError(
            "Ray is not installed: pip install -e '.[scale]' (ray[client]==2.60.0), then use --ray again."
        ) from None
    if cfg.address is not None:
        check_reachable(cfg.address)
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if cfg.address is None:  # GPUs are detected, never declared: a private cluster reports what exists
        kwargs["num_cpus"] = max(math.ceil(cfg.workers * cfg.num_cpus), 1)
    try:
        ray.init(address=cfg.address, **kwargs)
    except ConnectionError as err:
        raise InputError(f"Could not join the Ray cluster at {cfg.address}: {err}") from None
    try:
        resources = ray.cluster_resources()
        check_resources(cfg, resources)
        yield resources
    finally:
        ray.shutdown()


def check_resources(cfg: RayConfig, resources: dict) -> None:
    """Refuse a cluster that cannot hold ``cfg.workers`` workers (``resources``: Ray's totals).

    >>> check_resources(RayConfig(workers=2), {"CPU": 2.0})
    >>> check_resources(RayConfig(workers=1, num_gpus=1), {"CPU": 2.0})
    Traceback (most recent call last):
    probes.errors.InputError: The Ray cluster reports 0 GPUs; 1 workers × 1 GPU need 1. Set num_gpus = 0 or join a cluster with GPUs.
    """
    need_cpu, need_gpu = cfg.workers * cfg.num_cpus, cfg.workers * cfg.num_gpus
    if resources.get("CPU", 0) < need_cpu:
        raise InputError(
            f"The Ray cluster has {resources.get('CPU', 0):g} CPUs; {cfg.workers} workers × "
            f"{cfg.num_cpus:g} CPU need {need_cpu:g}. Use fewer --workers or add nodes."
        )
    if need_gpu and resources.get("GPU", 0) < need_gpu:
        raise InputError(
            f"The Ray cluster reports {resources.get('GPU', 0):g} GPUs; {cfg.workers} workers × "
            f"{cfg.num_gpus:g} GPU need {need_gpu:g}. Set num_gpus = 0 or join a cluster with GPUs."
        )


def _actor_class(cfg: RayConfig):
    import ray

    @ray.remote(num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus, max_restarts=-1, max_task_retries=0)
    class Worker:
        """Holds what ``make_worker`` built (a loaded model) and evaluates payloads with it."""

        def __init__(self, make_worker: WorkerFactory, shared: list, threads: int):
            import torch

            torch.set_num_threads(threads)
            self.error: BaseException | None = None
            try:
                self.work = make_worker(ray.get(shared[0]))  # a nested ref: fetched, not inlined
            except Exception as err:  # re-raised by ready(), so the driver sees the real message
                self.error = err

        def ready(self) -> int:
            if self.error is not None:
                raise self.error
            return os.getpid()

        def run(self, payload: Any) -> dict:
            return self.work(payload)

    return Worker


def _progress(total: int, initial: int, desc: str, n_workers: int, enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    prog = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[state]}"),
        TimeRemainingColumn(),
        disable=not enabled,
    )
    main = prog.add_task(desc, total=total, completed=initial, state="")
    lines = [
        prog.add_task(f"  worker {i}", total=None, state="starting", start=False) for i in range(n_workers)
    ]
    return prog, main, lines


def run_keyed(
    tasks: Sequence[tuple[str, Any]],
    make_worker: WorkerFactory,
    log: JsonlLog,
    cfg: RayConfig,
    *,
    shared: Any = None,
    progress: bool = True,
    desc: str = "tasks",
    on_result: Callable[[str, Any], dict] | None = None,
) -> KeyedStats:
    """Run every task whose key is not in ``log`` on ``cfg.workers`` Ray actors; append each record.

    ``make_worker(shared)`` runs once per actor (``shared`` travels through the object store once) and
    returns ``work(payload) -> result``; ``on_result(key, result) -> record`` (in the driver, e.g. to
    write a result's tables) turns it into the JSON record, by default the result itself. Records get
    their task's ``key``. Call inside :func:`cluster`.

    >>> import tempfile; from pathlib import Path
    >>> log = JsonlLog(Path(tempfile.mkdtemp()) / "squares.jsonl")
    >>> def make(offset):
    ...     return lambda x: {"value": x * x + offset}
    >>> cfg = RayConfig(workers=1)
    >>> with cluster(cfg):  # doctest: +SKIP
    ...     stats = run_keyed([(f"k{i}", i) for i in range(4)], make, log, cfg, shared=1)
    >>> [r["value"] for r in log.read()]  # doctest: +SKIP
    [1, 2, 5, 10]
    """
    import ray
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayTaskError, WorkerCrashedError

    started = time.time()
    have = {r.get("key") for r in log.read()}
    log.repair()
    queue = deque((k, p) for k, p in tasks if k not in have)
    stats = KeyedStats(skipped=len(tasks) - len(queue))
    if not queue:
        return stats
    shared_ref = [ray.put(shared)]  # into the object store once, for every worker
    worker_cls = _actor_class(cfg)
    n = min(cfg.workers, len(queue))
    actors = [worker_cls.remote(make_worker, shared_ref, cfg.threads)]
    ray.get(actors[0].ready.remote())  # the first worker fills shared caches alone
    actors += [worker_cls.remote(make_worker, shared_ref, cfg.threads) for _ in range(n - 1)]
    retries: dict[str, int] = {}
    inflight: dict[Any, tuple[int, str, Any]] = {}  # ref → (worker, key, payload); key None: a ready()
    idle: list[int] = [0]
    for i in range(1, n):
        inflight[actors[i].ready.remote()] = (i, None, None)
    lost = (ActorDiedError, ActorUnavailableError, WorkerCrashedError)
    prog, main, lines = _progress(len(tasks), stats.skipped, desc, n, progress)

    def state() -> str:
        running = sum(k is not None for _, k, _ in inflight.values())
        return f"running {running} · failed {len(stats.failed)} · retried {stats.retried}"

    try:
        with prog:
            while queue or inflight:
                while idle and queue:
                    i = idle.pop()
                    key, payload = queue.popleft()
                    inflight[actors[i].run.remote(payload)] = (i, key, payload)
                    prog.update(lines[i], state=f"running {key}")
                prog.update(main, state=state())
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
                for ref in ready:
                    i, key, payload = inflight.pop(ref)
                    try:
                        result = ray.get(ref)
                    except lost:
                        inflight[actors[i].ready.remote()] = (i, None, None)  # back once restarted
                        prog.update(lines[i], state="restarting")
                        if key is None:
                            continue
                        retries[key] = retries.get(key, 0) + 1
                        if retries[key] > cfg.max_retries:
                            stats.failed.append(key)
                        else:
                            stats.retried += 1
                            queue.appendleft((key, payload))
                        continue
                    except RayTaskError as err:
                        raise err.as_instanceof_cause() from None
                    idle.append(i)
                    if key is None:
                        prog.start_task(lines[i])
                        prog.update(lines[i], state=f"ready (pid {result})")
                        continue
                    if key not in have:
                        log.append({"key": key, **(on_result(key, result) if on_result else result)})
                        have.add(key)
                        stats.done += 1
                        stats.per_worker[i] = stats.per_worker.get(i, 0) + 1
                        prog.advance(main)
                    prog.update(lines[i], state=f"{stats.per_worker.get(i, 0)} done")
            prog.update(main, state=state())
    finally:
        for a in actors:  # a task still running dies with its worker; its key stays for the resume
            ray.kill(a)
    stats.seconds = time.time() - started
    return stats
