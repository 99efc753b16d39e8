"""Benchmark: minibatch vs full linear CKA, against torch-cka and rsatoolbox, in one process.

Usage::

    python benchmarks/similarity.py            # n = 10k and 100k, d = 768 (minutes; ~3 GB RAM at 10k)
    python benchmarks/similarity.py --quick    # n = 1k and 4k: seconds
    python benchmarks/similarity.py --n 20000 --d 512 --batch-size 2048 --device cuda

Methods (all on the same float32 activations, Y a noisy nonlinear function of X):

* ``ours-minibatch``: :func:`analysis.similarity.minibatch_cka` (float64 per batch, feature space,
  O(d^2) memory).
* ``ours-feature``: :func:`analysis.similarity.linear_cka` on the whole data (biased, feature space);
  ``ours-feature-u`` the same with ``debiased=True``, the full-data value minibatch CKA estimates
  (biased CKA is inflated when d is not much smaller than n, reference note §4.1).
* ``ours-gram``: :func:`analysis.similarity.cka` with n x n Grams (biased), only where 4 n^2 float64
  buffers fit in half the available memory.
* ``torch-cka``: ``torch_cka.CKA`` with identity models and the same batches (its float32 default);
  it computes the same minibatch estimator, so its value is compared with ``ours-minibatch``.
* ``rsatoolbox``: squared-Euclidean RDMs (``calc_rdm``), double-centred into Grams, cosine = biased
  linear CKA; n x n, so only where it fits.

Peak memory is the peak resident set size above the level at the start of each call, sampled every
millisecond by a background thread after ``malloc_trim`` has returned freed heap pages to the OS (on
CUDA: ``torch.cuda.max_memory_allocated``); it is approximate (allocator caching, 1 ms sampling). Ratios
are relative to ``ours-minibatch``. Each method runs ``--repeat`` times (3 with ``--quick``): the best
time and the largest peak are shown, since a shared machine makes single timings noisy. ``ours-minibatch-f32`` runs in float32 like torch-cka, for a
like-for-like time.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import platform
import threading
import time
import warnings
from collections.abc import Callable

os.environ.setdefault("TQDM_DISABLE", "1")  # torch-cka draws a progress bar per comparison

import numpy as np
import torch

from analysis.similarity import cka, linear_cka, minibatch_cka


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


try:
    _LIBC = ctypes.CDLL("libc.so.6")
except OSError:  # not glibc
    _LIBC = None


def _release_free_memory() -> None:
    """Return freed heap pages to the OS, so that reuse by the next method shows up as RSS growth."""
    gc.collect()
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)


class PeakMemory:
    """Peak RSS (CPU) or CUDA allocation above the level at entry, in bytes."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0

    def __enter__(self) -> PeakMemory:
        _release_free_memory()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return self
        self._base = _rss_bytes()
        self._top = self._base
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.is_set():
                self._top = max(self._top, _rss_bytes())
                self._stop.wait(0.001)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self._base
            return
        self._top = max(self._top, _rss_bytes())
        self._stop.set()
        self._thread.join()
        self.peak = self._top - self._base


def make_data(n: int, d: int, seed: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    w = torch.randn(d, d, generator=gen) / d**0.5
    y = torch.tanh(x @ w) + 0.5 * torch.randn(n, d, generator=gen)
    return x.to(device), y.to(device)


def run_torch_cka(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    import torch_cka
    from torch.utils.data import DataLoader, TensorDataset

    m1, m2 = torch.nn.Sequential(torch.nn.Identity()), torch.nn.Sequential(torch.nn.Identity())
    dl1 = DataLoader(TensorDataset(x.cpu()), batch_size=batch_size, shuffle=False, drop_last=True)
    dl2 = DataLoader(TensorDataset(y.cpu()), batch_size=batch_size, shuffle=False, drop_last=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine = torch_cka.CKA(
            m1, m2, "x", "y", model1_layers=["0"], model2_layers=["0"], device=str(x.device)
        )
        engine.compare(dl1, dl2)
    return float(engine.export()["CKA"][0, 0])


def run_rsatoolbox(x: torch.Tensor, y: torch.Tensor) -> float:
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm

    grams = []
    for m in (x, y):
        a = m.cpu().numpy().astype(np.float64)
        d = calc_rdm(Dataset(a), method="euclidean").get_matrices()[0]
        del a
        # -1/2 H D H, in place: double centring of the squared-distance matrix.
        d -= d.mean(axis=0, keepdims=True)
        d -= d.mean(axis=1, keepdims=True)
        d *= -0.5
        grams.append(d)
    a, b = grams
    return float(np.vdot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def available(module: str) -> str | None:
    try:
        mod = __import__(module)
    except ImportError:
        return None
    from importlib import metadata

    dist = {"torch_cka": "torch-cka", "rsatoolbox": "rsatoolbox"}[module]
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:  # pragma: no cover
        return getattr(mod, "__version__", "?")


def _methods(
    x: torch.Tensor, y: torch.Tensor, batch: int, fits: bool, why: str, libs: dict[str, str | None]
) -> list[tuple[str, Callable[[], float] | None, str]]:
    """(name, zero-argument runner or None, reason when skipped) for each method."""
    methods: list[tuple[str, Callable[[], float] | None, str]] = [
        ("ours-minibatch", lambda: minibatch_cka(x, y, batch_size=batch, drop_last=True), ""),
        (
            "ours-minibatch-f32",
            lambda: minibatch_cka(x, y, batch_size=batch, drop_last=True, dtype=torch.float32),
            "",
        ),
        ("ours-feature", lambda: linear_cka(x, y, method="feature"), ""),
        ("ours-feature-u", lambda: linear_cka(x, y, debiased=True, method="feature"), ""),
        ("ours-gram", (lambda: cka(x, y)) if fits else None, why),
    ]
    if libs["torch_cka"]:
        methods.append(("torch-cka", lambda: run_torch_cka(x, y, batch), ""))
    else:
        methods.append(("torch-cka", None, "skipped: torch-cka is not installed"))
    if libs["rsatoolbox"] and fits:
        methods.append(("rsatoolbox", lambda: run_rsatoolbox(x, y), ""))
    else:
        methods.append(("rsatoolbox", None, why if libs["rsatoolbox"] else "skipped: not installed"))

    return methods


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small n (1k, 4k) so the run takes seconds")
    parser.add_argument("--n", type=int, nargs="+", help="sample counts (default 10000 100000)")
    parser.add_argument("--d", type=int, default=768, help="feature width of both inputs (default 768)")
    parser.add_argument("--batch-size", type=int, help="minibatch rows (default 1024; 512 with --quick)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (ours and torch-cka)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeat", type=int, help="runs per method; best time, worst memory (3 quick, else 1)"
    )
    args = parser.parse_args(argv)

    ns = args.n or ([1000, 4000] if args.quick else [10_000, 100_000])
    batch = args.batch_size or (512 if args.quick else 1024)
    repeat = args.repeat or (3 if args.quick else 1)
    device = torch.device(args.device)
    libs = {name: available(name) for name in ("torch_cka", "rsatoolbox")}
    print(
        f"python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"numpy {np.__version__}, device {device}, d = {args.d}, batch = {batch}, best of {repeat} runs"
    )
    print(
        "reference libraries: "
        + ", ".join(f"{k}=={v}" if v else f"{k} (not installed)" for k, v in libs.items())
    )

    # Warm up every code path on tiny data so one-off start-up costs are not timed.
    wx, wy = make_data(256, 16, 1, device)
    minibatch_cka(wx, wy, batch_size=64)
    linear_cka(wx, wy)
    cka(wx, wy)
    if libs["torch_cka"]:
        run_torch_cka(wx, wy, 64)
    if libs["rsatoolbox"]:
        run_rsatoolbox(wx, wy)

    header = f"{'n':>7} {'method':<18} {'CKA':>10} {'|diff|':>9} {'time s':>8} {'peak MB':>9} {'t ratio':>8} {'mem ratio':>9}"
    for n in ns:
        x, y = make_data(n, args.d, args.seed, device)
        gram_bytes = 4 * n * n * 8
        fits = gram_bytes < 0.5 * _available_bytes()
        why = (
            f"skipped: one n x n float64 matrix is {n * n * 8 / 1e9:.1f} GB and the Gram route needs ~4 "
            f"({gram_bytes / 1e9:.0f} GB) > half the available {_available_bytes() / 1e9:.0f} GB"
        )
        methods = _methods(x, y, batch, fits, why, libs)
        print()
        print(header)
        results: dict[str, tuple[float, float, int]] = {}
        for name, fn, reason in methods:
            if fn is None:
                print(f"{n:>7} {name:<18} {reason}")
                continue
            times, peaks = [], []
            for _ in range(repeat):
                with PeakMemory(device) as mem:
                    t0 = time.perf_counter()
                    value = fn()
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    times.append(time.perf_counter() - t0)
                peaks.append(mem.peak)
            elapsed, peak = min(times), max(peaks)
            results[name] = (value, elapsed, peak)
            # Unbiased estimators are compared with ours-minibatch, biased full ones with ours-feature.
            minibatch_like = ("ours-minibatch", "ours-minibatch-f32", "ours-feature-u", "torch-cka")
            ref = "ours-minibatch" if name in minibatch_like else "ours-feature"
            diff = abs(value - results[ref][0]) if ref in results else float("nan")
            base_t, base_m = results["ours-minibatch"][1], max(results["ours-minibatch"][2], 1)
            print(
                f"{n:>7} {name:<18} {value:>10.6f} {diff:>9.1e} {elapsed:>8.3f} {peak / 2**20:>9.1f} "
                f"{elapsed / base_t:>8.2f} {peak / base_m:>9.2f}"
            )
        del x, y
        gc.collect()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
