"""Where an attack attempt's time goes: wall-clock per phase of one :func:`run_attempt`.

Phases: ``backward`` (the token gradient: one forward + backward), ``forward`` (candidate evaluation),
``sampling`` (top-k sampling + decode/encode filter), ``readout`` (the success check's probe forward),
``generation`` (greedy answers of the success check and the final answer), ``other`` (the rest: buffer
bookkeeping, the starting suffixes, Python). Timers wrap the module-level functions the optimiser and
the checks call, so the attack itself runs unchanged.

>>> with phase_timers() as t:
...     pass
>>> sorted(t)
['backward', 'forward', 'generation', 'readout', 'sampling']
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator

from analysis.rerouting import judge as judges
from analysis.rerouting import optimiser
from probes.handle import ModelHandle

__all__ = ["PHASES", "phase_timers", "profile_attempt"]

PHASES = ("backward", "forward", "sampling", "readout", "generation", "other")
_WRAP = {  # (module, function name) -> phase
    (optimiser, "token_gradient"): "backward",
    (optimiser, "evaluate"): "forward",
    (optimiser, "sample_candidates"): "sampling",
    (optimiser, "filter_candidates"): "sampling",
    (judges, "readout_judge"): "readout",
}


def _timed(fn, phase: str, acc: dict[str, float]):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[phase] += time.perf_counter() - t

    return wrapper


@contextlib.contextmanager
def phase_timers() -> Iterator[dict[str, float]]:
    """Seconds per phase of everything run inside (generation: every ``ModelHandle.generate`` call)."""
    acc: dict[str, float] = defaultdict(float)
    for p in PHASES[:-1]:
        acc[p] = 0.0
    saved = [(mod, name, getattr(mod, name)) for mod, name in _WRAP]
    gen = ModelHandle.generate
    try:
        for mod, name, fn in saved:
            setattr(mod, name, _timed(fn, _WRAP[(mod, name)], acc))
        ModelHandle.generate = _timed(gen, "generation", acc)
        yield acc
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)
        ModelHandle.generate = gen


def profile_attempt(handle: ModelHandle, objective, cfg, prompt: str, check, seed: int = 0) -> dict:
    """One :func:`~analysis.rerouting.attempt.run_attempt` under :func:`phase_timers`: its record plus
    ``profile`` = seconds per phase (``other`` = total minus the timed phases) and ``steps``."""
    from analysis.rerouting.attempt import run_attempt

    t = time.perf_counter()
    with phase_timers() as acc:
        rec = run_attempt(handle, objective, cfg, prompt, seed, check)
    total = time.perf_counter() - t
    prof = {p: round(acc[p], 3) for p in PHASES[:-1]}
    prof["other"] = round(total - sum(acc.values()), 3)
    prof["total"] = round(total, 3)
    return {**rec, "profile": prof}
