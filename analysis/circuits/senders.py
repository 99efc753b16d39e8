"""Weights vs data: rank a receiver's senders by their best OV component in a static channel scan."""

from __future__ import annotations

import numpy as np
import pandas as pd

from probes.errors import InputError

__all__ = ["sender_ranks"]


def sender_ranks(scan: pd.DataFrame, receiver: tuple[int, int], mode: str = "Q") -> pd.DataFrame:
    """Senders of ``receiver`` ranked by their best component's z (``scan_channels`` output).

    Columns ``sender_layer, sender_head, component, score, z, rank`` (rank 1 = highest z).
    """
    sel = scan[
        (scan["receiver_layer"] == receiver[0])
        & (scan["receiver_head"] == receiver[1])
        & (scan["mode"] == mode)
    ]
    if sel.empty:
        raise InputError(f"scan has no {mode}-mode rows for receiver {receiver[0]}.{receiver[1]}.")
    best = sel.loc[sel.groupby(["sender_layer", "sender_head"], observed=True)["z"].idxmax().to_numpy()]
    best = best.sort_values("z", ascending=False).reset_index(drop=True)
    best["rank"] = np.arange(1, len(best) + 1)
    cols = ["sender_layer", "sender_head", "component", "score", "z", "rank"]
    return best[cols].astype({"sender_layer": int, "sender_head": int, "component": int})
