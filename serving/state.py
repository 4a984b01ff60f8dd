"""What the service holds in memory: the champion, the history, and every day's prediction + explanation.

Kept free of BentoML so it can be tested and benchmarked directly. Loading never raises: a missing
champion or an empty store leaves the state *not ready* with the reason, which /v1/ready reports.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cascade_radar.config import Settings
from features.build import FeatureTable, assemble_panel, build_feature_table, compute_features
from features.store import HistoryStore
from serving.schemas import SignalRow
from training.explain import Explainer, day_explanation
from training.model import CascadeModel

# the panel columns whose absence on a day is worth telling the caller
CORE_INPUTS = ["price_usd", "oi_close_usd", "funding_rate_frac8h", "inflow_coin", "outflow_coin", "sth_sopr", "sth_nupl"]
SIGNAL_TO_PANEL = {"funding_rate_frac8h": "funding_rate_binance_frac8h"}


class RequestError(ValueError):
    """Bad input from the caller; ``field`` names what is wrong, ``status`` the HTTP code."""

    def __init__(self, field_name: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.status = status


@dataclass
class ServingState:
    settings: Settings
    model: CascadeModel | None = None
    identity: dict[str, str] = field(default_factory=dict)
    table: FeatureTable | None = None
    panel: pd.DataFrame | None = None
    explained: pd.DataFrame | None = None
    explainer: Explainer | None = None
    reason: str = ""
    # hot path of /predict: per-day arrays, so a request is an index lookup and a top-k, no pandas
    _row: dict[pd.Timestamp, int] = field(default_factory=dict)
    _probs: np.ndarray | None = None  # (days, 3) p_cascade, p_long, p_short
    _shap: np.ndarray | None = None  # (days, features) cascade log-odds contributions
    _values: np.ndarray | None = None  # (days, features) feature values
    _basis: np.ndarray | None = None
    _missing: list[list[str]] = field(default_factory=list)
    _drivers_meta: list[tuple[str, str]] = field(default_factory=list)  # (feature, family)

    @property
    def ready(self) -> bool:
        return not self.reason

    @classmethod
    def load(cls, settings: Settings) -> ServingState:
        from training.register import load_champion

        state = cls(settings)
        try:
            state.model, state.identity = load_champion(settings)
        except Exception as exc:  # noqa: BLE001 - any failure here means "not ready", with the reason
            state.reason = f"no champion model: {exc}"
            return state
        store = HistoryStore(settings.data_path)
        if store.is_empty():
            state.reason = f"no history in {settings.data_path}: run `make data-reference` or `make data`"
            return state
        try:
            raw = store.panel()  # read the store once for both the features and the input panel
            state.table = build_feature_table(raw, settings)
            state.panel = assemble_panel(raw)
        except Exception as exc:  # noqa: BLE001
            state.reason = f"history could not be turned into features: {exc}"
            return state
        through = pd.Timestamp(state.model.trained_through) if state.model.trained_through else pd.Timestamp.max
        label = f"{state.identity['name']} v{state.identity['version']} (@{state.identity['alias']})"
        state.explainer = Explainer(state.model, label, through, [], settings.labels.horizon_days, settings.alert_threshold)
        state.explained = state.explainer.explain(state.table.table)
        state._index_days()
        return state

    def _index_days(self) -> None:
        from training.explain import family_of

        ex = self.explained
        feats = self.model.features
        self._row = {day: i for i, day in enumerate(ex.index)}
        self._probs = ex[["p_cascade", "p_long", "p_short"]].to_numpy()
        self._shap = ex[[f"cascade_shap__{f}" for f in feats]].to_numpy()
        self._values = self.table.table[feats].to_numpy()
        self._basis = ex["basis"].to_numpy()
        present = self.panel[[c for c in CORE_INPUTS if c in self.panel.columns]].notna()
        absent = [c for c in CORE_INPUTS if c not in self.panel.columns]
        cols = list(present.columns)
        self._missing = [[c for c, ok in zip(cols, flags, strict=True) if not ok] + absent for flags in present.loc[ex.index].to_numpy()]
        self._drivers_meta = [(f, family_of(f)) for f in feats]

    # ------------------------------------------------------------------ queries
    @property
    def first_day(self) -> pd.Timestamp:
        return self.table.table.index[0]

    @property
    def last_day(self) -> pd.Timestamp:
        return self.table.table.index[-1]

    def latest_complete_day(self) -> pd.Timestamp:
        """The latest day on which price, open interest and funding all have a value."""
        core = self.panel[["price_usd", "oi_close_usd", "funding_rate_frac8h"]].notna().all(axis=1)
        return core[core].index[-1] if core.any() else self.last_day

    def resolve_day(self, as_of: dt.date | None, field_name: str = "as_of") -> pd.Timestamp:
        if as_of is None:
            return self.latest_complete_day()
        day = pd.Timestamp(as_of)
        if day < self.first_day or day > self.last_day:
            raise RequestError(field_name, f"{as_of} is outside the history ({self.first_day.date()}..{self.last_day.date()})", 404)
        return day

    def model_info(self) -> dict[str, str]:
        return {k: self.identity[k] for k in ("name", "version", "alias")}

    def explanation(self, day: pd.Timestamp) -> dict[str, object]:
        return self._explanation(self.explained.loc[day], self.table.table.loc[day])

    def _explanation(self, row: pd.Series, features: pd.Series) -> dict[str, object]:
        return day_explanation(row, features, self.settings.labels.horizon_days, self.settings.alert_threshold)

    def prediction(self, day: pd.Timestamp, top: int = 5) -> dict[str, object]:
        """The /predict answer for a stored day, from the arrays computed at start-up."""
        i = self._row[day]
        p, p_long, p_short = (float(v) for v in self._probs[i])
        shap = self._shap[i]
        order = np.argsort(-np.abs(shap), kind="stable")[:top]
        drivers = []
        for j in order:
            value = self._values[i, j]
            feature, fam = self._drivers_meta[j]
            drivers.append({"feature": feature, "family": fam, "value": float(value) if np.isfinite(value) else None, "contribution": float(shap[j])})
        return {
            "as_of": str(day.date()), "data_through": str(self.last_day.date()), "horizon_days": self.settings.labels.horizon_days,
            "cascade_probability": p, "long_probability": p_long, "short_probability": p_short,
            "direction": "long" if p_long >= p_short else "short", "alert": p >= self.settings.alert_threshold,
            "basis": str(self._basis[i]), "missing_inputs": self._missing[i], "model": self.model_info(), "top_drivers": drivers,
        }

    def _prediction(self, e: dict[str, object], missing: list[str], data_through: pd.Timestamp, top: int) -> dict[str, object]:
        return {
            "as_of": e["date"], "data_through": str(data_through.date()), "horizon_days": e["horizon_days"],
            "cascade_probability": e["cascade_probability"], "long_probability": e["long_probability"],
            "short_probability": e["short_probability"], "direction": e["direction"], "alert": e["alert"],
            "basis": e["basis"], "missing_inputs": missing, "model": self.model_info(), "top_drivers": e["top_drivers"][:top],
        }

    def range(self, start: dt.date, end: dt.date, max_days: int = 4000) -> list[dict[str, object]]:
        if end < start:
            raise RequestError("end", f"{end} is before start {start}")
        first, last = self.resolve_day(start, "start"), self.resolve_day(end, "end")
        if (last - first).days + 1 > max_days:
            raise RequestError("end", f"at most {max_days} days per request")
        rows = self.explained.loc[first:last]
        thr = self.settings.alert_threshold
        return [{"as_of": str(day.date()), "cascade_probability": float(r.p_cascade), "long_probability": float(r.p_long),
                 "short_probability": float(r.p_short), "direction": "long" if r.p_long >= r.p_short else "short",
                 "alert": bool(r.p_cascade >= thr), "basis": r.basis} for day, r in zip(rows.index, rows.itertuples(), strict=True)]

    # ------------------------------------------------------------------ posted signals
    def min_signal_rows(self) -> int:
        return self.settings.serving_min_signal_rows

    def signals_panel(self, signals: list[SignalRow]) -> pd.DataFrame:
        """The posted rows as a raw panel in the store's column names."""
        if len(signals) < self.min_signal_rows():
            raise RequestError("signals", f"{len(signals)} rows posted, at least {self.min_signal_rows()} consecutive days are needed "
                               f"(the longest feature window plus lags)", 422)
        frame = pd.DataFrame([s.model_dump() for s in signals])
        frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("date")), name="date")
        frame = frame.rename(columns=SIGNAL_TO_PANEL).astype("float64")
        return frame

    def predict_signals(self, signals: list[SignalRow], top: int = 5) -> dict[str, object]:
        """Prediction for the last posted day, through the same feature code as training."""
        raw = self.signals_panel(signals)
        panel = assemble_panel(raw)
        features, _ = compute_features(panel, self.settings.features)
        day = features.index[-1]
        row = self.explainer.explain(features.loc[[day]]).iloc[0]
        e = self._explanation(row, features.loc[day])
        missing = [c for c in CORE_INPUTS if c in panel.columns and pd.isna(panel.at[day, c])]
        missing += [c for c in CORE_INPUTS if c not in panel.columns]
        return self._prediction(e, sorted(set(missing)), day, top)

