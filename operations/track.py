"""The live track record: ledger rows scored against the labels once their horizon has passed."""

from __future__ import annotations

import pandas as pd

from cascade_radar.config import Settings
from features.build import load_feature_table, load_history
from operations.ledger import score


def track_record(frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Per coin in the ledger: rows scored, alerts, precision, events, recall, median lead, events whose first alert said
    "side uncertain", direction — split by basis (in-sample rows are the champion's hindsight, out-of-sample ones the
    honest record). Counts stay integers; a rate not measured yet is missing (``score``)."""
    out = {}
    for asset, rows in frame.groupby("asset"):
        each = settings.for_asset(str(asset))
        ft = load_feature_table(load_history(each), each)
        judged = ft.labels.daily["cascade_day"].dropna()
        last = judged.index[-1] if len(judged) else pd.Timestamp.min
        for basis, part in rows.groupby("basis"):
            out[(asset, basis)] = score(part, ft.labels.events, last, settings.labels.horizon_days)
    return pd.DataFrame.from_dict(out, orient="index").rename_axis(["asset", "basis"])  # per column: counts stay int64
