"""Print DataFrames as rich tables (shared by the CLI command groups)."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table


def print_frame(
    df: pd.DataFrame, title: str, console: Console | None = None, floatfmt: str = "{:.3f}"
) -> None:
    table = Table(title=title)
    for col in df.columns:
        table.add_column(str(col), justify="right")
    for row in df.itertuples(index=False):
        table.add_row(*[floatfmt.format(v) if isinstance(v, float) else str(v) for v in row])
    (console or Console()).print(table)
