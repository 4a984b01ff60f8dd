"""The product's words, defined once: docs/glossary.md and the dashboard's glossary page are both written from ``TERMS``
(``make docs`` rewrites the Markdown; a test checks it is current). Plain data, no work at import."""

from __future__ import annotations

import html

TITLE = "Glossary"
LEDE = "The words cascade-radar uses, as a risk desk reads them."

# (term, what it means): in the order a reader meets them on a coin's page
TERMS: tuple[tuple[str, str], ...] = (
    ("liquidation cascade",
     "A day on which forced liquidations of leveraged positions (longs and shorts together) reach at least 4 times the median "
     "of the coin's previous 90 days; consecutive such days are one event. Its side: a long squeeze (longs liquidated into a "
     "fall) or a short squeeze (shorts liquidated into a rise) when one side holds at least 60 % of the liquidated dollars, or "
     "else when the price moved at least 1.5 times the coin's usual daily swing (a fall: long); otherwise two-sided, a cascade "
     "with no side. P(cascade) is the probability that one starts within the next 14 days."),
    ("base rate",
     "How often a cascade started within the next 14 days on the coin's days the model never saw (its walk-forward "
     "out-of-fold days): the probability of an ordinary day, and what P(cascade) should be read against."),
    ("relative risk",
     "P(cascade) divided by the base rate: 1.0× is a normal day for the coin, 2.0× twice as likely as usual. Also said "
     "\"× normal\"."),
    ("percentile",
     "Where a day's P(cascade) stands among the model's out-of-fold answers for the coin: the 90th percentile is higher than "
     "nine answers in ten."),
    ("major cascade",
     "A cascade whose peak day reaches at least 8 times the median of the coin's previous 90 days: the tier that does the "
     "most damage. P(major) is the probability that one starts within the next 14 days; it is never above P(cascade), since "
     "a major cascade is a cascade."),
    ("within 3 d, 7 d, 14 d",
     "The term structure: the probability that a cascade starts within the next 3, 7 and 14 days, from the same model. It "
     "never falls as the horizon grows; the 14-day number is P(cascade). A champion trained before these numbers existed "
     "answers them as \"not measured\"."),
    ("the warning checklist",
     "The warning signs of a build-up, as an analyst writes them down for each signal family, with round thresholds fixed "
     "before looking at results: RSI divergence and compressed volatility, open interest outrunning price, one-sided or "
     "extreme funding, exchange inflows drying up into a rally, extreme STH-SOPR and STH-NUPL, crowded top traders, "
     "liquidations already running hot. Each sign is on or off on a day, whether or not the model reads its family."),
    ("open interest",
     "The value of all open futures and perpetual-swap positions on the coin, in US dollars: leverage in the market. Open "
     "interest rising faster than price means new leverage is piling in."),
    ("funding",
     "The periodic payment between the long and the short side of a perpetual swap that keeps its price near the spot "
     "price, shown in basis points per 8 hours. Positive: longs pay shorts (longs are crowded); negative: shorts pay longs."),
    ("taker flow",
     "The share of traded volume that bought at the ask (aggressive buyers) rather than sold at the bid: a high taker-buy "
     "share means buyers are chasing the price."),
    ("positioning",
     "How one-sided traders are: the long/short ratio of accounts (or of top traders' positions) and the taker-buy share. A "
     "crowded side is the one a cascade liquidates."),
    ("exchange flows",
     "Coins moved onto exchanges (inflow, often to sell) and off them (outflow, often to hold), against their recent norm; "
     "on-chain, read from Bitcoin for every coin."),
    ("SOPR",
     "Spent Output Profit Ratio: the price coins were sold at over the price they were bought at, for the coins moved that "
     "day. Above 1 sellers take profit, below 1 they sell at a loss. STH-SOPR counts short-term holders only (coins held "
     "under about 155 days)."),
    ("STH-NUPL",
     "Short-Term Holder Net Unrealized Profit/Loss: the paper profit (positive) or loss (negative) of recent buyers as a "
     "share of their coins' value. A fast swing from loss to profit is part of a build-up."),
    ("liquidation memory",
     "What was already liquidated by the end of the day: intensity against its own 90-day median, days since the last "
     "cascade day, the long share of recent liquidations."),
    ("push",
     "How much one feature or one signal family moved that day's answer away from the model's average day (its SHAP "
     "value), in log-odds: positive made a cascade more likely, negative less. A family's push adds up its features with a "
     "value that day."),
    ("log-odds",
     "The scale the model adds its pushes on: the logarithm of the odds p / (1 − p). A push of +0.69 doubles the odds of a "
     "cascade, −0.69 halves them, +0.1 raises them by about a tenth; 0 is a probability of 50 %."),
    ("scored as missing",
     "A family or a feature with no data that day. The model was trained with such gaps and scores them as unknown, never "
     "as zero; a missing value is never shown as a cause: no bar, no driver, no share of its family's push. A family "
     "missing that day is written \"missing (scored as missing)\"."),
    ("out-of-fold",
     "An answer given by a model that never saw the day: the walk-forward splits the history into blocks, and each block is "
     "answered by a model trained only on the days before it (a walk-forward fold). What the model would have said then."),
    ("walk-forward fold",
     "One step of the walk-forward evaluation: a model trained on every day up to a date, then tested on the next block of "
     "days, with a 14-day gap between them so that no outcome leaks. \"Walk-forward fold 4\" is the fourth such model."),
    ("out-of-sample",
     "An answer for a day after the champion's training data: the model had not seen it."),
    ("in-sample (hindsight)",
     "An answer for a day the champion was trained on: it saw the outcome, so the answer is not what it would have said "
     "then."),
    ("champion",
     "The coin's registered model in use: it became champion only after beating every baseline on days it never saw."),
    ("expected skill (ROC-AUC)",
     "How well the model ranked days with a cascade ahead above days without, on days it never saw with the same families "
     "missing as this one: 0.5 is chance, 1.0 perfect. A day is answered only when it clears the skill floor."),
    ("side uncertain",
     "The model does not state a side: its P(long | cascade) is too close to the usual long share, or the coin's direction "
     "has shown no skill on days the model never saw."),
    ("alert line",
     "The P(cascade) at or above which a coin is in alert, chosen per coin rather than fixed: the lowest line at which the "
     "model, on days it never saw, raised at most one false alarm per 30 days and was in alert on no more days than had a "
     "cascade ahead. Every answer says its coin's line and how it was chosen."),
    ("backtest (what acting on it was worth)",
     "A leveraged position held through the days the model never saw, cut to a lower leverage the day after each alert; "
     "liquidated when the day's low (long) or high (short) crosses its liquidation price, paying funding and fees. It is "
     "compared with the same position always on, cut on the most volatile days, and cut on random days (chance) as often. "
     "Daily bars: the order of moves inside a day is not seen."),
)


def markdown() -> str:
    """docs/glossary.md."""
    lines = [f"# {TITLE}", "", f"{LEDE} Written from `cascade_radar/glossary.py` (`make docs`); the dashboard's glossary page "
             "(`/dashboard/glossary`) shows the same words.", ""]
    for term, meaning in TERMS:
        lines += [f"**{term}** — {meaning}", ""]
    return "\n".join(lines)


def html_list() -> str:
    """The terms as an HTML definition list (every text escaped)."""
    items = "".join(f'\n      <dt id="{html.escape(term.split(" (")[0].replace(" ", "-").lower())}">{html.escape(term)}</dt>'
                    f"<dd>{html.escape(meaning)}</dd>" for term, meaning in TERMS)
    return f'<dl class="glossary">{items}\n    </dl>'
