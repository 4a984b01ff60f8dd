"""`make bench` (training part): time of each stage of `make train`, against one bare LightGBM fit."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import lightgbm as lgb

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from common import bench_settings, print_table, timed  # noqa: E402

from cascade_radar.config import Settings  # noqa: E402
from features.build import load_feature_table  # noqa: E402
from features.store import HistoryStore  # noqa: E402
from training.evaluate import walk_forward  # noqa: E402
from training.model import CascadeModel, is_cascade, model_features  # noqa: E402
from training.train import train  # noqa: E402

TARGET_SECONDS = 120.0
TUNE_TARGET_SECONDS = 900.0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings, what = bench_settings(Path(tmp))
        store = HistoryStore(settings.data_path)
        t_features, ft = timed(lambda: load_feature_table(store, settings), repeat=3)
        labelled = ft.table[ft.table["target"].notna()]
        X = labelled[model_features(ft.features, settings.model)]
        y = is_cascade(labelled["target"])
        model = CascadeModel(settings.model)
        params = {**model._params(), "verbose": -1}  # noqa: SLF001 - same parameters as the model
        t_bare, _ = timed(lambda: lgb.train(params, lgb.Dataset(X, label=y.astype(float)), num_boost_round=settings.model.n_estimators), repeat=3)
        t_walk, _ = timed(lambda: walk_forward(ft, settings))
        t_train, result = timed(lambda: train(settings, store=store))
        print(f"data: {what}; {len(ft.table)} days x {len(ft.features)} features, {len(labelled)} labelled days")
        print_table("make train stages", [
            ("bare LightGBM fit (all labelled days)", t_bare),
            ("feature table build", t_features),
            ("walk-forward evaluation (4 predictors x folds)", t_walk),
            ("train(): features + eval + final fit + report + MLflow + registration", t_train),
        ], baseline="bare LightGBM fit (all labelled days)")
        total = t_train  # train() builds the features itself
        print(f"\nfeatures + training end to end: {total:.1f} s (budget {TARGET_SECONDS:.0f} s: {'within' if total < TARGET_SECONDS else 'OVER'})")
        print(f"registered version {result.model_version}, gate {'passed' if result.passed_gate else 'failed'}")
        if what.startswith("reference"):
            pooled(settings, t_train)


def pooled(settings: Settings, one_coin: float) -> None:
    """`make train` and `make tune` on the seven coins pooled (reference history), against one coin's train()."""
    from cascade_radar.config import ASSETS
    from features.sources.reference import import_reference
    from training.tune import tune

    every = settings.model_copy(update={"assets": list(ASSETS)})
    for asset in ASSETS[1:]:
        import_reference(HistoryStore(every.for_asset(asset).data_path), every.reference_path, asset)
    t_pooled, result = timed(lambda: train(every))
    t_tune, _ = timed(lambda: tune(every, write_selection=False))
    print_table("seven coins pooled", [
        ("train(), BTC alone", one_coin),
        (f"train(), {len(ASSETS)} coins pooled", t_pooled),
        ("tune(): nested selection, every candidate", t_tune),
    ], baseline="train(), BTC alone")
    print(f"\npooled train {t_pooled:.1f} s (budget {TARGET_SECONDS:.0f} s: {'within' if t_pooled < TARGET_SECONDS else 'OVER'}); "
          f"tune {t_tune:.0f} s (budget {TUNE_TARGET_SECONDS:.0f} s: {'within' if t_tune < TUNE_TARGET_SECONDS else 'OVER'}); "
          f"gate: {', '.join(f'{a} {chr(10003) if v.passed else chr(10007)}' for a, v in result.verdicts.items())}")


if __name__ == "__main__":
    main()
