"""Rules every floor shares, each written once: the side of a forecast and of an event, log-odds to probability, the window in which
an alert warns of an event, the bases a day can be answered on, the age of an answer, and a probability's yardstick in
words.

Ground floor: imports nothing of the project.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

# ------------------------------------------------------------------ a caller's words
MAX_ECHO = 40  # characters of a caller's value an error repeats


def shown(value: object, limit: int = MAX_ECHO) -> str:
    """A caller's value as an error repeats it: its repr, cut to ``limit`` characters with the full length said (a 60 kB
    coin name never comes back whole)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def coin_key(name: str) -> str:
    """A coin name as the coin list spells it: ASCII upper-cased; anything else unchanged, so it matches no coin
    (``"ſol".upper()`` is ``"SOL"``: Unicode case folding must not turn another string into a coin)."""
    return name.upper() if name.isascii() else name


# ------------------------------------------------------------------ the families a day has
def missing_key(families: list[str] | tuple[str, ...] | set[str]) -> str:
    """The name of a set of missing families in the expected-skill table: sorted, joined by '+' ('' when none is missing)."""
    return "+".join(sorted(families))


def skill_said(expected_roc_auc: float | None, skill_floor: float | None) -> str:
    """An answer's yardstick of skill in words, the same in the CLI, the alert text and the PNG."""
    if expected_roc_auc is None:
        return "expected skill: not measured"
    floor = f"; answered above {skill_floor:.2f}" if skill_floor is not None else ""
    return f"expected skill on days like this: ROC-AUC {expected_roc_auc:.2f} (0.5 = chance{floor})"


# ------------------------------------------------------------------ a probability's yardstick
def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, ..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def times(relative_risk: float) -> str:
    """A relative risk as a person reads it: '1.1×' (of the base rate: '1.1× normal')."""
    return f"{relative_risk:.1f}×"


def yardstick_said(p_cascade: float, horizon_days: int, base_rate: float | None, relative_risk: float | None,
                   percentile: float | None) -> str:
    """A headline probability with its yardstick, the same in the CLI, the alert text and the PNG:
    'P(cascade within 14 d) 0.46 — base rate 0.41, 1.1× normal, 62nd percentile'."""
    head = f"P(cascade within {horizon_days} d) {p_cascade:.2f}"
    if base_rate is None or relative_risk is None:
        return f"{head} — base rate: not measured"
    tail = f", {ordinal(round(percentile))} percentile" if percentile is not None else ""
    return f"{head} — base rate {base_rate:.2f}, {times(relative_risk)} normal{tail}"


def term_said(p_cascade_by_horizon: dict[str, float | None] | None, p_major: float | None) -> str:
    """An answer's term structure and severity in words, the same in the CLI and the alert text (the dashboard writes the
    same line): 'within 3 d 0.12 · 7 d 0.25 · 14 d 0.41 · major 0.08'; a number the champion does not give is 'not
    measured' (a champion trained before its heads, a ledger row written before them)."""
    def said(p: float | None) -> str:
        return "not measured" if p is None else f"{p:.2f}"

    if not p_cascade_by_horizon:
        return f"within shorter horizons: not measured · major {said(p_major)}"
    horizons = sorted(p_cascade_by_horizon.items(), key=lambda kv: int(kv[0]))
    return "within " + " · ".join(f"{h} d {said(p)}" for h, p in horizons) + f" · major {said(p_major)}"


# ------------------------------------------------------------------ probabilities and the side
LONG, SHORT = "long", "short"
SIDES = (LONG, SHORT)


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """Log-odds to probability."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def side(p_long: np.ndarray | float, p_short: np.ndarray | float) -> np.ndarray:
    """The forecast side: 'long' when a long squeeze is at least as likely as a short squeeze."""
    return np.where(np.asarray(p_long) >= np.asarray(p_short), LONG, SHORT)


def side_uncertain(p_long_given_cascade: float, long_prior: float, band: float, skill: float | None) -> bool:
    """Is the side not worth stating? When the coin's direction has no out-of-fold skill (``skill``: Brier skill against the
    training long share, None if unmeasured, <= 0 none), or the day's P(long | cascade) lies within ``band`` of that prior."""
    return skill is None or skill <= 0 or abs(p_long_given_cascade - long_prior) <= band


def side_words(value: str) -> str:
    """'long squeeze' / 'short squeeze' / 'two-sided cascade'."""
    return "two-sided cascade" if value == TWO_SIDED else f"{value} squeeze"


# ------------------------------------------------------------------ the side of an event
TWO_SIDED = "two-sided"  # an event (and the target of a day with it ahead) whose side neither its dollars nor its price move name
EVENT_SIDES = (LONG, SHORT, TWO_SIDED)
BY_DOLLARS, BY_PRICE_MOVE, BY_NEITHER = "dollars", "price move", "neither"  # what named an event's side (its `side_basis`)


def move_sigmas(price_move: float, daily_vol: float, days: int) -> float:
    """A price move (log return over ``days`` days) in units of the coin's daily volatility scaled to those days
    (``daily_vol * sqrt(days)``); NaN when either is unknown or the volatility is not positive."""
    scale = daily_vol * np.sqrt(max(days, 1))
    return float(price_move / scale) if np.isfinite(price_move) and np.isfinite(scale) and scale > 0 else float("nan")


def event_side(long_usd: float, short_usd: float, price_move: float, daily_vol: float, days: int, share: float,
               sigmas: float) -> tuple[str, str]:
    """(side, basis) of a liquidation event — a day or a run of cascade days:

    * ``dollars``: one side holds at least ``share`` of the liquidated dollars → that side;
    * else ``price move``: the event's price move (log return, close of the day before its first day to close of its last)
      is at least ``sigmas`` times the coin's daily volatility (measured before the event, scaled by sqrt(days)) → a fall
      liquidated longs: ``long``; a rise: ``short``;
    * else ``neither``: ``two-sided`` — not a squeeze of one side, and never scored as a right or wrong side.
    """
    total = long_usd + short_usd
    long_share = long_usd / total if total > 0 else float("nan")
    if long_share >= share:
        return LONG, BY_DOLLARS
    if 1.0 - long_share >= share:
        return SHORT, BY_DOLLARS
    z = move_sigmas(price_move, daily_vol, days)
    if abs(z) >= sigmas:  # NaN compares False: an unknown move names no side
        return (LONG if z < 0 else SHORT), BY_PRICE_MOVE
    return TWO_SIDED, BY_NEITHER


def side_right(said: str | None, event_direction: str) -> bool | None:
    """Was a stated side right about an event? None — not scored — when nothing was stated ("side uncertain") or the
    event was two-sided (it had no side to be right or wrong about)."""
    return None if said is None or event_direction not in SIDES else said == event_direction


UNCERTAIN = "side uncertain"


def stated_side(row: dict[str, object] | pd.Series) -> str | None:
    """The side an answer (or a ledger row) states: 'long' / 'short', or None where it says "side uncertain". A row
    written before ``side_uncertain`` existed stated its side."""
    flag = row.get("side_uncertain")
    return None if isinstance(flag, bool | np.bool_) and flag else str(row["side"])


def side_said(row: dict[str, object] | pd.Series) -> str:
    """The side as every interface prints it: 'long', 'short' or 'side uncertain'."""
    return stated_side(row) or UNCERTAIN


# ------------------------------------------------------------------ the warned window
def warning_window(event_start: pd.Timestamp, horizon_days: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The days whose forecast covers an event starting on ``event_start``: [start - H, start - 1].

    A forecast made on day t is about an event starting in (t, t + H]; so an alert on day t *warned of* the event
    exactly when t lies in this window. The evaluation, the ledger's track record, the replays and the alert
    episodes all count leads with it.
    """
    start = pd.Timestamp(event_start)
    return start - pd.Timedelta(days=horizon_days), start - pd.Timedelta(days=1)


def warns(day: pd.Timestamp | pd.Series | pd.DatetimeIndex, event_start: pd.Timestamp, horizon_days: int) -> bool | np.ndarray:
    """Does a forecast made on ``day`` (or on each of several days) cover an event starting on ``event_start``?"""
    first, last = warning_window(event_start, horizon_days)
    return (day >= first) & (day <= last)


def first_warning(alert_days: pd.DatetimeIndex, event_start: pd.Timestamp, horizon_days: int) -> pd.Timestamp | None:
    """The first alert day that warned of the event (None: none did); the lead is ``event_start`` minus it."""
    inside = alert_days[np.asarray(warns(alert_days, event_start, horizon_days), dtype=bool)]
    return pd.Timestamp(inside.min()) if len(inside) else None


def alert_episodes(alert: pd.Series) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Runs of consecutive alert days as (first, last)."""
    days = alert.index[alert.to_numpy(dtype=bool)]
    runs: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    for day in days:
        if runs and (day - runs[-1][1]).days == 1:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


# ------------------------------------------------------------------ the basis of an answer
OUT_OF_FOLD, OUT_OF_SAMPLE, IN_SAMPLE = "out-of-fold", "out-of-sample", "in-sample"
ANSWER_BASES = (OUT_OF_FOLD, OUT_OF_SAMPLE, IN_SAMPLE)
AUTO, CHAMPION = "auto", "champion"
BASES = (AUTO, CHAMPION)  # what a caller may ask for
BASIS_RULE = (
    "Which model answers a day. 'auto' (the default everywhere): a day inside a walk-forward test block of the champion's "
    "own training run is answered by that fold's model, which never saw the day (out-of-fold: what the model would have "
    "said then); a day after the champion's last training day by the champion (out-of-sample); any other day — before "
    "the first test block — by the champion in-sample, which was trained on that day's outcome (hindsight, flagged). "
    "'champion': the champion on every day (in-sample, i.e. hindsight, on the days it was trained on)."
)


# ------------------------------------------------------------------ age
def today_utc() -> dt.date:
    """Today's date in UTC: every age is measured against it."""
    return dt.datetime.now(dt.UTC).date()


def age_days(day: pd.Timestamp | dt.date | str, today: dt.date | None = None) -> int:
    """Days from ``day`` to today (UTC): how old an answer's data are."""
    return ((today or today_utc()) - pd.Timestamp(day).date()).days


def span_warns(first: pd.Timestamp, last: pd.Timestamp, event_starts: pd.Series, horizon_days: int) -> np.ndarray:
    """Per event start: did some day of [first, last] (an alert episode) warn of it? I.e. does the event's warning
    window meet the span — the event starts in (first, last + H]."""
    starts = pd.to_datetime(pd.Series(event_starts))
    return ((starts - pd.Timedelta(days=horizon_days) <= last) & (starts - pd.Timedelta(days=1) >= first)).to_numpy(dtype=bool)
