"""`make bench` (daily part): replaying the daily job into a ledger over 90 past days, in one pass of the forecast path.

The champion is trained here as `make train` does (seven coins on the reference history, else BTC on synthetic history).
Measured in the same run: the 90-day replay in one pass (`cascade-radar daily --as-of FIRST..LAST`: every coin loaded
once, each day an index lookup) against the baseline of one `daily` call per day (`daily --as-of DAY`, which loads
every coin again), timed on ``BASELINE_DAYS`` days and reported per day. Target (issue 20): 90 days in at most 60 s.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import pandas as pd  # noqa: E402
from common import print_table, serving_champion, timed  # noqa: E402

from cascade_radar.config import OperationsConfig  # noqa: E402
from operations.daily import daily  # noqa: E402

DAYS = 90
BASELINE_DAYS = int(os.environ.get("BENCH_DAILY_BASELINE_DAYS", "3"))
TARGET_S = 60.0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        settings, what, result = serving_champion(workdir)
        last = min(pd.Timestamp(result.model.trained_through), result.feature_table.table.index[-1])
        days = list(pd.date_range(end=last, periods=DAYS, freq="D"))

        def run(ledger: str, chosen: list[pd.Timestamp]) -> object:
            ops = settings.model_copy(update={"alerts": OperationsConfig(ledger_file=workdir / ledger, update_store=False)})
            return daily(ops, days=chosen, update=False, log=lambda message: None)

        one_pass, report = timed(lambda: run("one_pass.jsonl", days))
        per_call, _ = timed(lambda: [run(f"day_{i}.jsonl", [d]) for i, d in enumerate(days[:BASELINE_DAYS])])
        per_day = per_call / BASELINE_DAYS
        rows = len(report.appended)
        bases = pd.Series([r["basis"] for r in report.appended]).value_counts().to_dict()
        print(f"data: {what}; {len(settings.assets)} coin(s); days {days[0].date()}..{days[-1].date()}; {rows} ledger rows; basis {bases}")
        print_table(f"daily replay of {DAYS} days (target <= {TARGET_S:.0f} s)",
                    [("one daily call per day (baseline), per day", per_day), (f"{DAYS} days, one daily call per day (extrapolated)", per_day * DAYS),
                     (f"{DAYS} days in one pass (daily --as-of FIRST..LAST)", one_pass)],
                    baseline="one daily call per day (baseline), per day")
        print(f"one pass vs one call per day: {per_day * DAYS / one_pass:.1f}x faster; "
              f"{'meets' if one_pass <= TARGET_S else 'MISSES'} the {TARGET_S:.0f} s target")


if __name__ == "__main__":
    main()
