"""probes: everything that touches a model's internals (packs, loading, hook sites, activation capture).

The main entry points are re-exported lazily (importing ``probes`` stays cheap):

>>> import probes
>>> probes.load_model.__module__
'probes.loading'

Activation capture lives in :mod:`probes.capture` (``from probes.capture import capture``).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_model": "probes.loading",
    "ModelHandle": "probes.handle",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'probes' has no attribute {name!r}")
