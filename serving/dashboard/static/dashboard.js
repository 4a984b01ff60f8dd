// cascade-radar dashboard: draws what the service's JSON routes answer, with Plotly (served by the service).
// No number is computed here that the API does not give: probabilities, sides, alerts, episodes and their
// outcomes, events and explanations all come from /predict, /predict_range, /explain and /v1/*.
"use strict";

// the page's data: a JSON data block, not a script (the Content-Security-Policy allows no inline script)
const CFG = JSON.parse(document.getElementById("cascade-radar-config").textContent);
const DARK = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
const NARROW = window.matchMedia && window.matchMedia("(max-width: 600px)").matches;  // a phone: legend entries wrap

// a legend entry in lines of at most ``width`` characters (Plotly never wraps one; on a phone a long one is cut)
function wrapped(text, width = 38) {
  if (!NARROW || text.length <= width) return text;
  const lines = [""];
  for (const word of text.split(" ")) {
    if (lines[lines.length - 1] && (lines[lines.length - 1] + " " + word).length > width) lines.push(word);
    else lines[lines.length - 1] = lines[lines.length - 1] ? `${lines[lines.length - 1]} ${word}` : word;
  }
  return lines.join("<br>");
}
const SIDE_COLOUR = { long: "#d62728", short: "#1f77b4", "two-sided": "#9467bd" };
const OUTCOME = {
  hit: { fill: "rgba(44,160,44,0.20)", legend: "rgba(44,160,44,0.55)", label: "alert episode followed by an event" },
  "false alarm": { fill: "rgba(127,127,127,0.22)", legend: "rgba(127,127,127,0.55)", label: "false alarm" },
  pending: { fill: "rgba(255,193,7,0.28)", legend: "rgba(255,193,7,0.7)", label: "alert still open (horizon not over)" },
  unjudged: { fill: "rgba(120,120,200,0.10)", legend: "rgba(120,120,200,0.35)", label: "alert before liquidation data (outcome unknown)" },
};
// the bases and their meaning come from the service (cascade_radar.rules); only their look is chosen here, in the same order
const BASIS_LOOK = [{ colour: DARK ? "#e8eaed" : "#111", dash: "solid" }, { colour: DARK ? "#b58ae0" : "#5b2c83", dash: "solid" }, { colour: "#8a8f96", dash: "dot" }];
const HINDSIGHT = CFG.hindsight;  // the basis on which the champion saw the outcome (in-sample)
const BASIS = Object.fromEntries(Object.entries(CFG.bases).map(([name, label], i) => [name, { ...BASIS_LOOK[i], label: `${name} (${label})` }]));
const PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
// every chart on the page's own background, in its ink; hovering a date axis names the day, not the month
const THEME = { paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: { color: DARK ? "#d8dee6" : "#1b1f24" } };
const GRID = DARK ? "#333a42" : "#e5e8ec";
const DAY_AXIS = { type: "date", hoverformat: "%Y-%m-%d", gridcolor: GRID };

// Plotly (the 1.2 MB basic bundle; preloaded by the page's head) runs while the data are fetched; charts wait for it
const plotlyReady = new Promise((resolve, reject) => {
  const script = document.createElement("script");
  script.src = `${CFG.base}/vendor/plotly.min.js`;
  script.onload = () => { performance.mark("plotly loaded"); resolve(window.Plotly); };
  script.onerror = () => reject(new Error("the chart library could not be loaded from the service"));
  document.head.appendChild(script);
});

// ------------------------------------------------------------------ the API
class ApiError extends Error {
  constructor(status, body) {
    super(body && (body.detail || body.error) ? `${body.detail || body.error}` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(path, body, { accept = [] } = {}) {
  const init = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (!response.ok && !accept.includes(response.status)) throw new ApiError(response.status, data);
  return data;
}

const query = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null)).toString();

// ------------------------------------------------------------------ small helpers
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child.nodeType ? child : String(child));
  return node;
}

const pct = (p) => `${(100 * p).toFixed(0)}%`;
const num = (v, digits = 2) => (v === null || v === undefined ? "—" : Number(v).toFixed(digits));
const signed = (v, digits = 2) => (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(digits);
function usd(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return `$${(v / 1e9).toFixed(1)}B`;
  if (a >= 1e6) return `$${(v / 1e6).toFixed(0)}M`;
  if (a >= 1e3) return `$${(v / 1e3).toFixed(0)}k`;
  return `$${v.toFixed(0)}`;
}
// the view a coin page opens on: the last ``months`` months of [first, end] (and the few days after end the timeline shows)
const lastMonths = (first, end, months) => {
  const from = new Date(`${end}T00:00:00Z`);
  from.setUTCMonth(from.getUTCMonth() - months);
  return [maxDay(shiftDay(first, -5), from.toISOString().slice(0, 10)), shiftDay(end, 10)];
};
function shiftDay(day, days) {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}
const maxDay = (a, b) => (a > b ? a : b);
const minDay = (a, b) => (a < b ? a : b);
const familyTitle = (f) => (CFG.families[f] ? CFG.families[f].title : f);
const familyColour = (f) => (CFG.families[f] ? CFG.families[f].colour : "#999");
// as cascade_radar.rules.side_words: an event neither its dollars nor its price move give a side is "two-sided"
const sideWord = (side) => (side === "two-sided" ? "two-sided cascade" : `${side} squeeze`);
// an event's liquidated dollars always with the scope of the series that measured them ("$404M (Binance only)")
const eventSize = (e, dollars = e.total_usd) => `${usd(dollars)} (${e.series})`;

function setStatus(text, error = false) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.classList.toggle("error", error);
}

function coinNav(assets, current) {
  const nav = document.getElementById("coin-nav");
  nav.replaceChildren(...assets.map((a) => el("a", { href: `${CFG.base}/coin/${a}`, "aria-current": a === current ? "page" : null, text: a })));
}

function sideBadge(forecast) {
  if (forecast.side_uncertain) {
    return el("span", { class: "badge uncertain", title: forecast.side_skill === null || forecast.side_skill <= 0
      ? "this coin's direction has no out-of-fold skill against the training long share"
      : `P(long | cascade) ${num(forecast.p_long_given_cascade)} is within the band of the prior ${num(forecast.long_prior)}` }, "side uncertain");
  }
  const p = forecast.side === "long" ? forecast.p_long : forecast.p_short;
  return el("span", { class: `badge ${forecast.side}`, title: "P(cascade and this side) — the likelier side" },
    `${sideWord(forecast.side)} ${num(p)}`);
}
const alertBadge = (alert) => el("span", { class: `badge ${alert ? "alert" : "calm"}`, text: alert ? "ALERT" : "no alert" });

// the answered day and its age against today, loud when it is older than the service's limit
function freshnessLine(forecast) {
  const age = forecast.outdated
    ? el("span", { class: "badge stale", title: "older than the configured limit: the store needs `cascade-radar daily`" }, `OUTDATED: ${forecast.age_days} days old`)
    : `${forecast.age_days} day(s) old`;
  const missing = forecast.missing_families.length ? el("span", { class: "badge stale", title: "families the model reads with no data that day: scored as missing, never a driver" },
    `no data: ${forecast.missing_families.map(familyTitle).join(", ")}`) : null;
  return el("div", { class: "small freshness" }, `answer for ${forecast.day} · `, age, " · ", missing || "every family the model reads has data",
    " · ", skillNote(forecast));
}

// the answer's yardstick of skill: what the walk-forward measured on days missing the same families (told by the service)
const skillNote = (x) => el("span", { class: "skill", title: x.expected_roc_auc_basis },
  x.expected_roc_auc == null ? "expected skill: not measured"
    : `expected skill ROC-AUC ${x.expected_roc_auc.toFixed(2)} (0.5 = chance${x.skill_floor == null ? "" : `; answered above ${x.skill_floor.toFixed(2)}`})`);

// a probability's yardstick, as the service gives it (training.yardstick): the coin's base rate over the champion's
// out-of-fold days, the day's P(cascade) relative to it, and its percentile among the coin's out-of-fold answers
const times = (rr) => `${Number(rr).toFixed(1)}×`;
const basePct = (p) => `${(100 * p).toFixed(1)}%`;
function ordinal(n) {
  const suffix = n % 100 >= 10 && n % 100 <= 20 ? "th" : { 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th";
  return `${n}${suffix}`;
}
// how far from its normal a coin's risk is: what a card is coloured by (the numbers are the service's, only the bands are the page's)
const RISK_BANDS = [
  { name: "high", at: 2, label: "2× normal or more" }, { name: "above", at: 1.25, label: "1.25–2× normal" },
  { name: "normal", at: 0.8, label: "0.8–1.25× normal" }, { name: "below", at: 0, label: "below 0.8× normal" },
];
const riskBand = (rr) => (rr === null || rr === undefined ? null : RISK_BANDS.find((b) => rr >= b.at));
function yardstick(x) {
  if (x.base_rate === null || x.base_rate === undefined) {
    return el("div", { class: "small yardstick", title: x.base_rate_basis, text: "base rate: not measured" });
  }
  return el("div", { class: "yardstick", title: x.base_rate_basis },
    el("span", { class: "relative-risk", text: `${times(x.relative_risk)} normal` }), " · ",
    el("span", { class: "base-rate", text: `base rate ${basePct(x.base_rate)}` }),
    x.percentile === null ? null : [" · ", el("span", { class: "percentile", text: `${ordinal(Math.round(x.percentile))} percentile` })]);
}

// the term structure and the severity, as the service gives them: P(cascade) within each horizon and P(a major cascade) —
// the line the CLI and the alert text print (cascade_radar.rules.term_said); a number the champion does not give is "not measured"
function termLine(x) {
  const said = (p) => (p === null || p === undefined ? "not measured" : num(p));
  const by = x.p_cascade_by_horizon || {};
  const horizons = Object.keys(by).sort((a, b) => Number(a) - Number(b));
  const terms = horizons.length ? `within ${horizons.map((h) => `${h} d ${said(by[h])}`).join(" · ")}` : "within shorter horizons: not measured";
  return el("div", { class: "small term", title: "P(a cascade starts within each horizon) — never falling as the horizon grows — and P(a major "
    + `cascade within ${x.horizon_days} days: one peaking at many times the trailing median), never above P(cascade)` },
    `${terms} · major ${said(x.p_major)}`);
}

// ------------------------------------------------------------------ overview: every coin
async function overviewPage() {
  const ready = await api("/v1/ready", undefined, { accept: [503] });
  const assets = Object.keys(ready.assets);
  coinNav(assets, null);
  const grid = document.getElementById("coins");
  const cards = assets.map((asset) => el("article", { class: "card", "data-asset": asset }, el("h2", {}, el("a", { href: `${CFG.base}/coin/${asset}`, text: asset })),
    el("p", { class: "small", text: "loading…" })));
  grid.replaceChildren(...cards);
  const horizon = Object.values(ready.assets).find((c) => c.ready);
  if (horizon) document.querySelectorAll("[data-horizon]").forEach((n) => { n.textContent = horizon.horizon_days; });
  setStatus(ready.ready ? "" : "No coin is ready: see each card for why.", !ready.ready);
  const answers = await Promise.all(assets.map((asset, i) => coinCard(cards[i], asset, ready.assets[asset])));
  // highest relative risk first (today's P against the coin's base rate, not the raw P); coins without one last
  const rank = (i) => answers[i]?.relative_risk ?? -Infinity;
  grid.replaceChildren(...cards.map((card, i) => [card, i]).sort((a, b) => rank(b[1]) - rank(a[1])).map(([card]) => card));
  document.getElementById("risk-legend").replaceChildren("Cards: highest relative risk first, coloured by it — ",
    ...RISK_BANDS.map((b) => el("span", { class: `swatch risk-${b.name}`, text: b.label })));
  performance.mark("every card drawn");
  document.body.dataset.loaded = "true";
}

async function coinCard(card, asset, info) {
  const title = card.firstChild;
  if (!info.ready) {
    card.replaceChildren(title, el("p", { class: "error", text: "not ready" }), el("p", { class: "small", text: info.reason }));
    return;
  }
  try {
    const today = await api("/predict", { asset });
    const first = info.first_answerable_day;
    const range = await api("/predict_range", { asset, start: maxDay(first, shiftDay(today.day, -89)), end: today.day });
    const band = riskBand(today.relative_risk);
    if (band) card.classList.add(`risk-${band.name}`);
    card.dataset.relativeRisk = today.relative_risk ?? "";
    const spark = el("div", { class: "spark", "aria-label": `${asset}: P(cascade) over the last 90 days` });
    card.replaceChildren(
      el("div", { class: "row" }, title, alertBadge(today.alert)),
      el("div", { class: "row" }, el("span", { class: "big", title: `P(cascade within ${today.horizon_days} days)`, text: pct(today.p_cascade) }), sideBadge(today)),
      yardstick(today), termLine(today),
      el("div", { class: "small", text: `P(cascade within ${today.horizon_days} days) · ${today.basis}` }),
      freshnessLine(today), spark);
    const Plotly = await plotlyReady;
    await Plotly.newPlot(spark, [{
      x: range.rows.map((r) => r.day), y: range.rows.map((r) => r.p_cascade), type: "scatter", mode: "lines",
      line: { color: DARK ? "#e8eaed" : "#111", width: 1.5 }, fill: "tozeroy", fillcolor: DARK ? "rgba(255,255,255,0.08)" : "rgba(0,0,0,0.06)", hovertemplate: "%{x}: %{y:.2f}<extra></extra>",
    }], {
      ...THEME, margin: { l: 28, r: 4, t: 4, b: 18 }, showlegend: false, yaxis: { range: [0, 1], tickvals: [0, info.alert_threshold, 1], tickformat: ".1f", fixedrange: true, gridcolor: GRID },
      xaxis: { fixedrange: true, tickformat: "%b %d", hoverformat: "%Y-%m-%d", nticks: 4, gridcolor: GRID }, font: { size: 10, color: THEME.font.color },
      shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: info.alert_threshold, y1: info.alert_threshold, line: { color: "#b42318", width: 1, dash: "dot" } }],
    }, { displayModeBar: false, responsive: true });
    return today;
  } catch (error) {
    card.replaceChildren(title, el("p", { class: "error", text: error.message }));
    return null;
  }
}

// ------------------------------------------------------------------ one coin
const coin = { asset: null, info: null, events: [], episodes: null, timeline: null, shapes: [], view: {} };

async function coinPage() {
  const asset = CFG.asset;
  document.title = `cascade-radar — ${asset}`;
  document.getElementById("title").textContent = `${asset}: liquidation cascade risk`;
  if (CFG.error) { setStatus(CFG.error, true); return; }
  const ready = await api("/v1/ready", undefined, { accept: [503] });
  coinNav(Object.keys(ready.assets), asset);
  const info = ready.assets[asset];
  if (!info) { setStatus(`${asset} is not served here (served: ${Object.keys(ready.assets).join(", ")})`, true); return; }
  if (!info.ready) { setStatus(`${asset} is not ready: ${info.reason}`, true); return; }
  coin.asset = asset;
  coin.info = info;
  const first = info.first_answerable_day;
  const end = info.data_through;
  const [today, range, events, episodes, ledger] = await Promise.all([
    api("/predict", { asset }), api("/predict_range", { asset, start: first, end }),
    api(`/v1/events?${query({ asset })}`), api(`/v1/episodes?${query({ asset })}`), ledgerRows(asset),
  ]);
  // the signals (the largest answer) are for the panes below the fold and the replays: asked for once, off the first screen's path
  const signalsData = () => (coin.signalsAsked ||= api(`/v1/signals?${query({ asset, start: first, end })}`));
  coin.signalsData = signalsData;
  document.getElementById("signals-csv").href = `/v1/signals?${query({ asset, start: first, end, format: "csv" })}`;
  document.getElementById("timeline-csv").href = `/v1/timeline?${query({ asset, start: first, end, format: "csv" })}`;
  document.getElementById("events-csv").href = `/v1/events?${query({ asset, format: "csv" })}`;
  document.getElementById("episodes-csv").href = `/v1/episodes?${query({ asset, format: "csv" })}`;
  performance.mark("data fetched");
  coin.events = events;
  coin.episodes = episodes;
  renderToday(today, info);
  renderEpisodeSummary(episodes, ledger);
  const picker = document.getElementById("day-picker");
  Object.assign(picker, { min: first, max: end, value: today.day });
  picker.addEventListener("change", () => picker.value && showDay(picker.value));
  renderReplayList(events);
  setStatus("");
  // the day's explanation is fetched and drawn while the timeline draws; then the day is marked on it
  const wanted = new URLSearchParams(location.hash.slice(1));
  const day = wanted.get("day") || today.day;
  const zoom = [wanted.get("from"), wanted.get("to")];  // a shared view's range, else the last 12 months ("all": one click)
  const shared = zoom.every((d) => /^\d{4}-\d{2}-\d{2}$/.test(d || "")) && zoom[0] < zoom[1];
  [coin.view.from, coin.view.to] = shared ? zoom : lastMonths(first, end, 12);
  await Promise.all([drawTimeline(range, events, episodes, ledger.rows || []), showDay(day, { deferCharts: true })]);
  trackZoom();
  await markDay(document.getElementById("day-picker").value);  // a no-op unless the day changed meanwhile
  whenVisible(document.getElementById("signals"), async () => {  // below the fold: drawn as it scrolls into view
    let signals;
    try {
      signals = await signalsData();
    } catch (error) {
      document.getElementById("signals").replaceChildren(el("p", { class: "error", text: error.message }));
      return;
    }
    await drawSignals(signals, episodes);
    linkZoom();
    await markDay(document.getElementById("day-picker").value);
  });
  whenVisible(document.getElementById("calibration"), async () => {  // below the fold: the coin's calibration, out of fold
    try {
      await drawCalibration(await api(`/v1/calibration?${query({ asset })}`), today);
    } catch (error) {
      document.getElementById("calibration").replaceChildren(el("p", { class: "error", text: error.message }));
    }
  });
  whenVisible(document.getElementById("backtest-panel"), () => showBacktest(asset));  // below the fold: what acting on it was worth
  const replay = wanted.get("replay") && events.events.find((e) => e.start === wanted.get("replay"));
  if (replay) await showReplay(replay);  // a replay's own URL: #replay=<event start>
  window.addEventListener("hashchange", () => {
    const asked = new URLSearchParams(location.hash.slice(1));
    const event = asked.get("replay") && events.events.find((e) => e.start === asked.get("replay"));
    if (event) showReplay(event);
    else if (asked.get("day") && asked.get("day") !== document.getElementById("day-picker").value) showDay(asked.get("day"));
  });
  document.body.dataset.loaded = "true";
  setTimeout(() => signalsData().catch(() => null), 0);  // the first screen is drawn: fetch the signals before they scroll into view (a failure is shown there)
}

// the coin's live ledger rows, every page of /v1/forecasts (newest first, the server's page size) followed by its next_cursor;
// an error answer (503: the ledger cannot be read) comes back as it is, for the summary to say
async function ledgerRows(asset) {
  const rows = [];
  let cursor = null;
  do {
    const page = await api(`/v1/forecasts?${query({ asset, cursor })}`, undefined, { accept: [503] });
    if (!page || page.status >= 400) return page || { status: 503, detail: "no answer" };
    rows.push(...page.rows);
    cursor = page.next_cursor;
  } while (cursor);
  return { rows, count: rows.length };
}

function renderToday(today, info) {
  const fresh = el("table", {}, el("thead", {}, el("tr", {}, el("th", { text: "family" }), el("th", { text: "model reads" }), el("th", { text: "data through" }), el("th", { class: "num", text: "days behind today" }), el("th", { text: "" }))),
    el("tbody", {}, today.freshness.map((f) => el("tr", {}, el("td", { text: familyTitle(f.family) }), el("td", { text: f.read_by_model ? "yes" : "" }), el("td", { text: f.data_through || "none" }),
      el("td", { class: "num", text: f.days_behind ?? "—" }), el("td", {}, f.stale ? el("span", { class: "badge stale", text: "STALE" }) : "")))));
  document.getElementById("today").replaceChildren(
    el("div", { class: "tile" }, el("div", { class: "small", text: `P(cascade within ${today.horizon_days} days), ${today.day}` }),
      el("div", { class: "big", text: pct(today.p_cascade) }), yardstick(today), termLine(today), el("div", {}, sideBadge(today), " ", alertBadge(today.alert)),
      el("div", { class: "small", title: today.alert_threshold_basis || "", text: `alert at P ≥ ${(today.alert_threshold ?? info.alert_threshold).toFixed(2)} (${today.asset}'s line) · basis: ${today.basis}` })),
    el("div", { class: "tile" }, el("div", { class: "small", text: "model" }), el("div", { text: `${today.model.name} v${today.model.version} (${today.model.alias})` }),
      freshnessLine(today), el("div", { class: "small", text: `answerable days ${info.answerable} (stored history ${info.history})` })),
    el("div", { class: "tile" }, el("div", { class: "small", text: "freshness of every signal family" }), fresh));
}

function renderEpisodeSummary(episodes, ledger) {
  const live = ledger.status >= 400 ? `the forecast ledger cannot be read: ${ledger.detail}`
    : ledger.count ? `${ledger.count} live forecast(s) in the ledger` : "no live forecast in the ledger yet";
  // the API's counts per basis of the day each alert fired: out-of-fold first, it is the honest record
  const order = Object.keys(CFG.bases).filter((b) => episodes.by_basis[b]);
  const parts = order.map((b) => {
    const c = episodes.by_basis[b];
    const extra = [c.pending ? `${c.pending} still open` : "", c.unjudged ? `${c.unjudged} before liquidation data` : ""].filter(Boolean).join(", ");
    return `${b}${b === HINDSIGHT ? " (hindsight)" : ""}: ${c.hit} followed by an event, ${c["false alarm"]} false alarm(s)${extra ? ", " + extra : ""}`;
  });
  const box = document.getElementById("episode-summary");
  box.replaceChildren(
    el("div", { text: `${episodes.hits} alert episode(s) followed by an event, ${episodes.false_alarms} false alarm(s), ${episodes.pending} still open, ` +
      `${episodes.unjudged} before liquidation data — alert at P ≥ ${episodes.threshold}, event within ${episodes.horizon_days} days, labels through ${episodes.last_judged_day}` }),
    el("div", { class: "small", text: `by the basis of the day each alert fired — ${parts.join(" · ")} · ${live}` }));
}

function legendSwatch(name, colour, symbol = "square") {
  return { x: [null], y: [null], type: "scatter", mode: "markers", name, marker: { color: colour, symbol, size: 12 }, hoverinfo: "skip" };
}

function eventTrace(events, side) {
  const chosen = events.filter((e) => e.side === side);
  return {
    x: chosen.map((e) => e.start), y: chosen.map(() => 1.07), type: "scatter", mode: "markers", name: `${sideWord(side)} event (size: peak × trailing median)`,
    marker: { color: SIDE_COLOUR[side], size: chosen.map((e) => Math.min(30, 6 + 2.2 * Math.sqrt(e.peak_ratio))), line: { color: "#fff", width: 0.5 }, opacity: 0.85 },
    text: chosen.map((e) => `${e.start} ${sideWord(e.side)}: ${eventSize(e)} liquidated (long ${usd(e.long_usd)}, short ${usd(e.short_usd)}), ` +
      `${e.peak_ratio.toFixed(1)}× the trailing median${e.major ? " — major" : ""}; side decided by ${e.side_basis}`),
    hovertemplate: "%{text}<extra></extra>",
  };
}

async function drawTimeline(range, events, episodes, ledgerRows) {
  const days = range.rows.map((r) => r.day);
  const traces = Object.entries(BASIS).map(([basis, style]) => ({
    x: days, y: range.rows.map((r) => (r.basis === basis ? r.p_cascade : null)), type: "scatter", mode: "lines",
    name: `P(cascade), ${style.label}`, line: { color: style.colour, width: 1.2, dash: style.dash }, connectgaps: false,
    customdata: range.rows.map((r) => [r.side, r.p_long, r.p_short, r.alert ? "ALERT" : "no alert"]),
    hovertemplate: `%{x}: P(cascade) %{y:.2f} · %{customdata[0]} squeeze (long %{customdata[1]:.2f}, short %{customdata[2]:.2f}) · %{customdata[3]}<extra>${basis}</extra>`,
  })).filter((t) => t.y.some((v) => v !== null));
  traces.unshift({
    x: days, y: range.rows.map((r) => r.p_long), type: "scatter", mode: "lines", name: "P(cascade and long squeeze)",
    line: { width: 0 }, fill: "tozeroy", fillcolor: "rgba(214,39,40,0.18)", hoverinfo: "skip",
  });
  if (ledgerRows.length) {
    traces.push({
      x: ledgerRows.map((r) => r.day), y: ledgerRows.map((r) => r.p_cascade), type: "scatter", mode: "markers", name: "live forecast ledger (as said that day)",
      marker: { color: "#ff7f0e", symbol: "diamond", size: 7 }, hovertemplate: "%{x}: live forecast %{y:.2f}<extra>ledger</extra>",
    });
  }
  traces.push(eventTrace(events.events, "long"), eventTrace(events.events, "short"), eventTrace(events.events, "two-sided"));
  for (const [outcome, style] of Object.entries(OUTCOME)) {
    const count = episodes.episodes.filter((e) => e.outcome === outcome).length;
    if (count) traces.push(legendSwatch(`${style.label} (${count})`, style.legend));
  }
  for (const t of traces) t.name = wrapped(t.name);
  coin.shapes = episodes.episodes.map((e) => ({
    type: "rect", xref: "x", yref: "y", x0: e.first, x1: shiftDay(e.last, 1), y0: 0, y1: 1, fillcolor: OUTCOME[e.outcome].fill, line: { width: 0 }, layer: "below",
  }));
  coin.shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: episodes.threshold, y1: episodes.threshold, line: { color: "#b42318", width: 1, dash: "dot" } });
  const layout = {
    ...THEME, margin: { l: 60, r: 20, t: 40, b: 40 }, hovermode: "closest", hoverdistance: 30, showlegend: true,
    legend: { orientation: "h", x: 0, y: NARROW ? -0.06 : -0.2, yanchor: "top", font: { size: NARROW ? 10 : 11 } },
    xaxis: { ...DAY_AXIS, title: { text: NARROW ? "" : "day (UTC)" }, range: coin.view.from ? [coin.view.from, coin.view.to] : [shiftDay(days[0], -5), shiftDay(days[days.length - 1], 10)], rangeselector: { buttons: [
      { count: 3, label: "3 months", step: "month", stepmode: "backward" }, { count: 1, label: "1 year", step: "year", stepmode: "backward" },
      { step: "all", label: "all" }], x: 0, y: 1.02, yanchor: "bottom", bgcolor: DARK ? "#22272e" : "#eef0f3", font: { color: THEME.font.color } } },
    yaxis: { title: { text: `P(cascade within ${range.horizon_days} days)` }, range: [0, 1.13], tickvals: [0, 0.2, 0.4, 0.6, 0.8, 1.0], fixedrange: true, gridcolor: GRID },
    shapes: coin.shapes,
    annotations: [{ xref: "paper", yref: "y", x: 1, y: episodes.threshold, text: `alert ≥ ${episodes.threshold}`, showarrow: false, xanchor: "right", yanchor: "bottom", font: { size: 10, color: "#b42318" } }],
  };
  const Plotly = await plotlyReady;
  // the explained day is marked in the first drawing (its explanation was asked for meanwhile): no second layout pass
  if (coin.view.day) layout.shapes = [...coin.shapes, dayMarker(coin.view.day)];
  coin.marked = coin.view.day;
  const div = document.getElementById("timeline");
  coin.timeline = await Plotly.newPlot(div, traces, layout, PLOT_CONFIG);
  div.on("plotly_click", (event) => {
    const point = event.points && event.points[0];
    if (point && point.x) showDay(String(point.x).slice(0, 10));
  });
  div.dataset.rendered = "true";
  performance.mark("timeline drawn");
}

function dayMarker(day) {
  return { type: "line", xref: "x", yref: "paper", x0: day, x1: day, y0: 0, y1: 1, line: { color: DARK ? "#d8dee6" : "#14181d", width: 1.5 } };
}

async function markDay(day) {
  if (!coin.timeline) return;
  const Plotly = await plotlyReady;
  const marker = dayMarker(day);
  if (coin.marked !== day) await Plotly.relayout(coin.timeline, { shapes: [...coin.shapes, marker] });
  coin.marked = day;
  if (coin.signalsChart) await Plotly.relayout(coin.signalsChart, { shapes: [...coin.signalShapes, marker] });
}

// ------------------------------------------------------------------ the signals, on the timeline's days
const PANE_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#e377c2", "#7f7f7f"];

async function drawSignals(signals, episodes) {
  const div = document.getElementById("signals");
  const panes = signals.panes;
  if (!panes.length) { div.replaceChildren(el("p", { class: "small", text: "no signal stored for this coin" })); return; }
  const days = signals.rows.map((r) => r.day);
  const gap = 0.025;
  const height = (1 - gap * (panes.length - 1)) / panes.length;
  const layout = { ...THEME, margin: { l: 70, r: 20, t: 10, b: 40 }, hovermode: "x unified", showlegend: true, barmode: "relative",
    legend: { orientation: "h", x: 0, y: -0.04, yanchor: "top", font: { size: 11 } } };
  const traces = [];
  panes.forEach((pane, i) => {
    const n = i === 0 ? "" : String(i + 1);
    const top = 1 - i * (height + gap);
    layout[`yaxis${n}`] = { domain: [top - height, top], title: { text: `${pane.title}<br><sub>${pane.unit}</sub>`, font: { size: 11 } }, gridcolor: GRID,
      zeroline: pane.name === "funding", zerolinecolor: GRID, type: pane.name === "price" || pane.name === "open_interest" ? "log" : "linear" };
    layout[`xaxis${n}`] = { ...DAY_AXIS, anchor: `y${n}`, showticklabels: i === panes.length - 1, ...(i === 0 ? {} : { matches: "x" }) };
    const scale = pane.scale ?? 1;  // a column's own unit -> the pane's (funding: a fraction per 8 h drawn in % per 8 h)
    pane.series.forEach((s, j) => {
      const shorts = s.column.includes("short");
      const bars = pane.name === "liquidations";
      const values = signals.rows.map((r) => (r[s.column] === null ? null : (bars && shorts ? -scale : scale) * r[s.column]));
      const common = { x: days, y: values, name: s.label, xaxis: `x${n}`, yaxis: `y${n}`, meta: { column: s.column, pane: pane.name } };
      // liquidations as filled steps (one path per series: thousands of bars were most of the page's drawing time)
      traces.push(bars
        ? { ...common, type: "scatter", mode: "lines", line: { shape: "hv", width: 0.8, color: shorts ? SIDE_COLOUR.short : SIDE_COLOUR.long },
            fill: "tozeroy", opacity: s.column.startsWith("binance") ? 0.45 : 0.9,
            customdata: signals.rows.map((r) => r[s.column]), hovertemplate: `${s.label} %{customdata:$,.3s}<extra></extra>` }
        : { ...common, type: "scatter", mode: "lines", line: { color: PANE_COLOURS[(i + j) % PANE_COLOURS.length], width: 1.2 },
            hovertemplate: `${s.label} %{y:.4~g} ${scale === 1 ? s.unit : pane.unit}<extra></extra>` });
    });
  });
  if (signals.rows.length) layout.xaxis.range = coin.view.from ? [coin.view.from, coin.view.to] : [shiftDay(days[0], -5), shiftDay(days[days.length - 1], 10)];
  // alert episodes on every pane
  coin.signalShapes = episodes.episodes.map((e) => ({ type: "rect", xref: "x", yref: "paper", x0: e.first, x1: shiftDay(e.last, 1), y0: 0, y1: 1,
    fillcolor: OUTCOME[e.outcome].fill, line: { width: 0 }, layer: "below" }));
  layout.shapes = coin.signalShapes;
  div.style.height = `${Math.max(420, 150 * panes.length)}px`;
  const Plotly = await plotlyReady;
  coin.signalsChart = await Plotly.newPlot(div, traces, layout, PLOT_CONFIG);
  div.on("plotly_click", (event) => {
    const point = event.points && event.points[0];
    if (point && point.x) showDay(String(point.x).slice(0, 10));
  });
  div.dataset.rendered = "true";
}

// draw below-the-fold charts only when they near the viewport: the first screen is drawn sooner
function whenVisible(element, draw) {
  if (!("IntersectionObserver" in window)) { draw(); return; }
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) {
      observer.disconnect();
      draw();
    }
  }, { rootMargin: "300px" });
  observer.observe(element);
}

// the view in the address bar (#day=…&from=…&to=…, or #replay=…): a link to it opens the same coin, range and day; the
// address never keeps a ?token=
function writeView() {
  const v = coin.view;
  const params = v.replay ? { replay: v.replay } : { day: v.day, ...(v.from ? { from: v.from, to: v.to } : {}) };
  const hash = new URLSearchParams(Object.entries(params).filter(([, x]) => x)).toString();
  history.replaceState(null, "", `${location.pathname}#${hash}`);
  const share = document.getElementById("share-link");
  if (share) share.href = `${location.pathname}#${hash}`;
}

function trackZoom() {
  writeView();
  coin.timeline.on("plotly_relayout", (change) => {
    const range = change["xaxis.range"] || (change["xaxis.range[0]"] ? [change["xaxis.range[0]"], change["xaxis.range[1]"]] : null);
    if (range) [coin.view.from, coin.view.to] = range.map((d) => String(d).slice(0, 10));
    else if (change["xaxis.autorange"]) [coin.view.from, coin.view.to] = coin.timeline.layout.xaxis.range.map((d) => String(d).slice(0, 10));  // "all", as drawn
    else return;
    writeView();
  });
}

// zoom one of the two day charts, the other follows
function linkZoom() {
  const charts = [coin.timeline, coin.signalsChart].filter(Boolean);
  if (charts.length < 2) return;
  let syncing = false;
  for (const [from, to] of [[charts[0], charts[1]], [charts[1], charts[0]]]) {
    from.on("plotly_relayout", async (change) => {
      if (syncing) return;
      const range = change["xaxis.range"] || (change["xaxis.range[0]"] ? [change["xaxis.range[0]"], change["xaxis.range[1]"]] : null);
      const reset = change["xaxis.autorange"];
      if (!range && !reset) return;
      syncing = true;
      try {
        const Plotly = await plotlyReady;
        await Plotly.relayout(to, range ? { "xaxis.range": range } : { "xaxis.autorange": true });
      } finally {
        syncing = false;
      }
    });
  }
}

async function showDay(day, { deferCharts = false } = {}) {
  const panel = document.getElementById("explanation");
  panel.hidden = false;
  panel.replaceChildren(el("h2", { text: `${coin.asset} on ${day}` }), el("p", { class: "small", text: "loading the explanation…" }));
  document.getElementById("day-picker").value = day;
  coin.view.day = day;
  delete coin.view.replay;
  writeView();
  markDay(day);
  let x;
  try {
    x = await api("/explain", { asset: coin.asset, day });
  } catch (error) {
    panel.replaceChildren(el("h2", { text: `${coin.asset} on ${day}` }), el("p", { class: "error", text: error.message }));
    return;
  }
  const basisNote = x.hindsight ? el("span", { class: "badge hindsight", title: "the champion was trained on this day's outcome" }, "in-sample: hindsight")
    : el("span", { class: "badge", text: x.basis });
  const cascadeBars = el("div", { id: "bars-cascade", "aria-label": "cascade model: contribution per family" });
  const directionBars = el("div", { id: "bars-direction", "aria-label": "direction model: contribution per family" });
  const drivers = el("table", { id: "drivers" },
    el("thead", {}, el("tr", {}, el("th", { text: "feature" }), el("th", { text: "family" }), el("th", { class: "num", text: "value that day" }), el("th", { class: "num", text: "push (log-odds)" }))),
    // the label and the value in its unit, as the family declares them; the column name on hover. A feature with no value
    // that day is never among them (the service leaves it out: missing data is never a cause)
    el("tbody", {}, x.top_drivers.map((d) => el("tr", {}, el("td", { text: d.label, title: d.feature }), el("td", { text: familyTitle(d.family) }),
      el("td", { class: "num", text: d.value_text }), el("td", { class: "num", text: signed(d.shap, 3) })))));
  panel.replaceChildren(
    el("h2", { text: `${x.asset} on ${x.day}` }),
    el("div", {}, el("span", { class: "big", text: pct(x.p_cascade) }), " ", sideBadge(x), " ", alertBadge(x.alert), " ", basisNote,
      x.missing_families.length ? el("span", { class: "badge stale", text: `no data: ${x.missing_families.map(familyTitle).join(", ")}` }) : null),
    yardstick(x), termLine(x),
    el("p", { class: "sentence", id: "sentence", text: x.sentence }),
    el("p", { class: "small" }, `model: ${x.model_used} · pushes (SHAP values) in ${x.scale} · ${x.age_days} day(s) old · `, skillNote(x)),
    el("div", { class: "bars" }, cascadeBars, directionBars),
    el("h3", { text: "Top features (with a value that day)" }), drivers,
    el("h3", { text: "The warning checklist" }),
    el("p", { class: "hint", text: "The warning signs of a build-up, as an analyst writes them down for each family — on or off that day, whether or not the model reads the family." }),
    el("table", { id: "checklist" },
      el("thead", {}, el("tr", {}, el("th", { text: "family" }), el("th", { text: "warning sign" }), el("th", { text: "" }), el("th", { text: "values that day" }))),
      el("tbody", {}, x.checklist.map((c) => el("tr", { class: c.on ? "on" : "" }, el("td", { text: familyTitle(c.family) + (c.read_by_model ? "" : " (not read by the model)") }),
        el("td", { text: c.warning, title: c.rule }), el("td", {}, c.on ? el("span", { class: "badge alert", text: "ON" }) : "off"),
        el("td", { text: c.values_text, title: Object.entries(c.values).map(([k, v]) => `${k} ${num(v, 4)}`).join(", ") }))))));
  const drawBars = async () => {
    if (!cascadeBars.isConnected) return;  // another day was asked for meanwhile
    const Plotly = await plotlyReady;
    await familyBars(Plotly, cascadeBars, x.cascade.shap_by_family, `Cascade model: what pushed P(cascade) up (+) or down (−)`,
      "push on the odds of a cascade (log-odds: +0.69 doubles them)");
    if (x.direction_model) {
      const d = x.direction_model;
      // the bars start from the model's average day (its base), not from the prior: that is the answer's long_prior
      await familyBars(Plotly, directionBars, d.shap_by_family, `Direction model: + towards a long squeeze, − towards a short<br><sub>P(long | cascade) ` +
        `from the model's average day ${num(d.base_probability)} (log-odds ${signed(d.base_value)}) to ${num(x.p_long_given_cascade)} · prior (training long share) ` +
        `${num(x.long_prior)}</sub>`, "push towards a long (+) or short (−) squeeze (log-odds)");
    } else {
      directionBars.replaceChildren(el("p", { class: "small", text: "this model has no direction model" }));
    }
    panel.dataset.drawn = x.day;
  };
  if (deferCharts) {  // the page's first load: the panel is below the fold, its bars are drawn as it scrolls into view
    panel.dataset.day = x.day;
    whenVisible(panel, drawBars);
    return;
  }
  await drawBars();
  panel.dataset.day = x.day;
}

// a family's push is null when the family is missing that day: named "missing (scored as missing)", with no bar — missing
// data is never drawn as a cause (the service's families' pushes count only features with a value)
const MISSING_PUSH = "missing (scored as missing)";

function familyBars(Plotly, div, families, title, axis) {
  const names = Object.keys(families).reverse();  // largest at the top, missing families at the bottom
  const labels = names.map((f) => (families[f] === null ? `${familyTitle(f)}: ${MISSING_PUSH}` : familyTitle(f)));
  return Plotly.newPlot(div, [{
    type: "bar", orientation: "h", x: names.map((f) => families[f]), y: labels, marker: { color: names.map(familyColour) },
    hovertemplate: "%{y}: %{x:+.3f}<extra></extra>", cliponaxis: false,
  }], {
    ...THEME, title: { text: title, font: { size: 13 } }, margin: { l: 140, r: 30, t: 40, b: 45 }, xaxis: { title: { text: axis }, zeroline: true, zerolinecolor: "#444", automargin: true },
    yaxis: { automargin: true, categoryorder: "array", categoryarray: labels }, showlegend: false,
  }, { displayModeBar: false, responsive: true });
}

// ------------------------------------------------------------------ calibration: is a 40 % a 40 %?
// the reliability diagram of the coin's out-of-fold answers (/v1/calibration: the bins saved with the champion), the base
// rate as a dotted line and today's P(cascade) marked on it
async function drawCalibration(cal, today) {
  const div = document.getElementById("calibration");
  const bins = cal.bins;
  document.getElementById("calibration-json").href = `/v1/calibration?${query({ asset: cal.asset })}`;
  if (!bins.length) { div.replaceChildren(el("p", { class: "small", text: `not measured: ${cal.base_rate_basis}` })); return; }
  const top = Math.min(1, Math.max(...bins.map((b) => Math.max(b.mean_predicted, b.observed, b.p_high)), today.p_cascade) + 0.05);
  const traces = [
    { x: [0, top], y: [0, top], type: "scatter", mode: "lines", name: "perfectly calibrated", line: { color: "#8a8f96", dash: "dash", width: 1 }, hoverinfo: "skip" },
    { x: bins.map((b) => b.mean_predicted), y: bins.map((b) => b.observed), type: "scatter", mode: "lines+markers", name: "the model, out of fold",
      line: { color: DARK ? "#e8eaed" : "#111", width: 1.5 }, marker: { size: bins.map((b) => 6 + 10 * Math.sqrt(b.days / Math.max(...bins.map((c) => c.days)))) },
      customdata: bins.map((b) => [b.p_low, b.p_high, b.days, b.event_days]),
      hovertemplate: "P %{customdata[0]:.2f}–%{customdata[1]:.2f}: predicted %{x:.2f} on average, a cascade followed on %{y:.0%} " +
        "(%{customdata[3]} of %{customdata[2]} days)<extra></extra>" },
  ];
  const Plotly = await plotlyReady;
  await Plotly.newPlot(div, traces, {
    ...THEME, margin: { l: 60, r: 20, t: 10, b: 50 }, showlegend: true, legend: { orientation: "h", x: 0, y: -0.25, font: { size: 11 } },
    xaxis: { title: { text: `predicted P(cascade within ${cal.horizon_days} days)` }, range: [0, top], gridcolor: GRID, tickformat: ".0%" },
    yaxis: { title: { text: "observed: share of days a cascade followed" }, range: [0, top], gridcolor: GRID, tickformat: ".0%" },
    shapes: [
      { type: "line", xref: "paper", x0: 0, x1: 1, y0: cal.base_rate, y1: cal.base_rate, line: { color: "#b26a00", width: 1, dash: "dot" } },
      { type: "line", yref: "paper", x0: today.p_cascade, x1: today.p_cascade, y0: 0, y1: 1, line: { color: "#b42318", width: 1.5 } },
    ],
    annotations: [
      { xref: "paper", x: 1, y: cal.base_rate, text: `base rate ${basePct(cal.base_rate)}`, showarrow: false, xanchor: "right", yanchor: "bottom", font: { size: 10, color: "#b26a00" } },
      { yref: "paper", x: today.p_cascade, y: 1, text: `${today.day}: ${pct(today.p_cascade)}`, showarrow: false, xanchor: "left", yanchor: "top", font: { size: 10, color: "#b42318" } },
    ],
  }, PLOT_CONFIG);
  div.dataset.rendered = "true";
}

// ------------------------------------------------------------------ what acting on it was worth: the de-risking backtest
// /v1/backtest serves what `make backtest` wrote: every figure, the rules' words and the days each rule cut are the service's.
// The page draws four rules (the fifth, scaled by relative risk, is in the CSV) and chooses only their look.
const RULE_LOOK = {
  placebo: { colour: "#8a8f96", width: 1.4, dash: "dot" },
  volatility: { colour: "#e8850c", width: 1.4, dash: "dash" },
  always_on: { colour: DARK ? "#e8eaed" : "#111", width: 1.4, dash: "solid" },
  forecast: { colour: DARK ? "#ff6b5e" : "#b42318", width: 2.2, dash: "solid" },  // drawn last: on top
};
const CUT_FILL = "rgba(180,35,24,0.12)";
let backtestAsked = 0;  // the last selection asked for: an earlier answer arriving late is not drawn

async function showBacktest(asset, choice = {}) {
  const asked = ++backtestAsked;
  const chart = document.getElementById("backtest-chart");
  const figures = document.getElementById("backtest-table");
  let bt;
  try {
    bt = await api(`/v1/backtest?${query({ asset, ...choice })}`, undefined, { accept: [404] });
  } catch (error) {
    chart.replaceChildren(el("p", { class: "error", text: error.message }));
    return;
  }
  if (asked !== backtestAsked) return;
  if (bt.status === 404) {  // no backtest written yet (or none of this coin): say what to run
    chart.replaceChildren(el("p", { class: "summary", id: "backtest-missing", text: "no backtest yet: run make backtest" }),
      el("p", { class: "small", text: bt.detail || "" }));
    chart.dataset.rendered = "missing";
    return;
  }
  document.querySelector("#backtest-panel .backtest-controls").hidden = false;
  document.getElementById("backtest-about").textContent = bt.about;
  document.getElementById("backtest-caveat").textContent = bt.caveat;
  const books = document.getElementById("backtest-book");
  const leverages = document.getElementById("backtest-leverage");
  books.replaceChildren(...Object.entries(bt.books).map(([book, words]) => el("option", { value: book, selected: book === bt.book, text: words })));
  leverages.replaceChildren(...bt.settings.leverages.map((v) => el("option", { value: v, selected: v === bt.leverage, text: `${v}×` })));
  books.onchange = leverages.onchange = () => showBacktest(asset, { book: books.value, leverage: leverages.value });
  document.getElementById("backtest-csv").href = `/v1/backtest?${query({ asset: bt.asset, format: "csv" })}`;
  document.getElementById("backtest-curves-csv").href = `/v1/backtest?${query({ asset: bt.asset, book: bt.book, leverage: bt.leverage, format: "csv", what: "curves" })}`;

  const x = bt.dates;
  const curve = Object.fromEntries(bt.curves.map((c) => [c.rule, c]));
  const positive = (ys) => ys.map((v) => (v !== null && v > 0 ? v : null));  // a log axis has no 0: a wiped-out book leaves it
  const traces = [];
  if (curve.placebo) {  // chance's band: its draws' 5th to 95th percentile each day, shaded between two invisible lines
    const label = curve.placebo.label;
    traces.push({ x, y: positive(curve.placebo.equity_p5), type: "scatter", mode: "lines", line: { width: 0 }, showlegend: false, hoverinfo: "skip",
      meta: { rule: "placebo", band: "p5" } });
    traces.push({ x, y: positive(curve.placebo.equity_p95), type: "scatter", mode: "lines", line: { width: 0 }, fill: "tonexty",
      fillcolor: "rgba(138,143,150,0.25)", name: wrapped(`${label}: 5–95 % of the draws`), hoverinfo: "skip", meta: { rule: "placebo", band: "p95" } });
  }
  for (const [rule, look] of Object.entries(RULE_LOOK)) {
    const c = curve[rule];
    if (!c) continue;
    const name = rule === "placebo" ? `${c.label}, median` : c.label;
    traces.push({ x, y: positive(c.equity), type: "scatter", mode: "lines", name: wrapped(name), meta: { rule },
      line: { color: look.colour, width: look.width, dash: look.dash }, hovertemplate: `%{y:.3~g}× the start<extra>${name}</extra>` });
  }
  const runs = curve.forecast ? curve.forecast.cut_runs : [];
  if (runs.length) traces.push(legendSwatch(wrapped(`cut by the forecast (the day after an alert): ${runs.length} run(s)`), CUT_FILL));
  const Plotly = await plotlyReady;
  await Plotly.newPlot(chart, traces, {
    ...THEME, margin: { l: 60, r: 20, t: 10, b: 40 }, hovermode: "x unified", showlegend: true,
    legend: { orientation: "h", x: 0, y: NARROW ? -0.1 : -0.15, yanchor: "top", font: { size: 11 } },
    xaxis: { ...DAY_AXIS }, yaxis: { type: "log", title: { text: "equity (× the starting equity, log scale)" }, exponentformat: "power", gridcolor: GRID },
    shapes: runs.map((r) => ({ type: "rect", xref: "x", yref: "paper", x0: r.first, x1: shiftDay(r.last, 1), y0: 0, y1: 1, fillcolor: CUT_FILL,
      line: { width: 0 }, layer: "below" })),
  }, PLOT_CONFIG);

  // beside it, the figures of the four rules for this position and leverage (chance: its median, its 5–95 % band under it)
  const rows = bt.rows.filter((r) => r.book === bt.book && r.leverage === bt.leverage);
  const times = (v) => `${Number(v).toPrecision(3)}×`;
  const count = (v) => (Number.isInteger(v) ? String(v) : Number(v).toFixed(1));
  const fall = (v) => `${v < 0 ? "−" : ""}${Math.abs(100 * v).toFixed(0)}%`;
  const cell = (r, figure, shown, main = shown(r[figure])) => el("td", { class: "num" }, main,
    r[`${figure}_p5`] === null || r[`${figure}_p5`] === undefined ? null
      : el("div", { class: "band", title: "chance: 5th to 95th percentile of its draws" }, `${shown(r[`${figure}_p5`])} to ${shown(r[`${figure}_p95`])}`));
  const heads = ["rule", "final equity", "liquidations", "worst drawdown", "days cut", "events caught while cut"];
  figures.replaceChildren(el("table", { id: "backtest-figures" },
    el("thead", {}, el("tr", {}, heads.map((h, i) => el("th", { class: i ? "num" : null, text: h })))),
    el("tbody", {}, Object.keys(RULE_LOOK).reverse().map((rule) => rows.find((r) => r.rule === rule)).filter(Boolean).map((r) =>
      el("tr", { "data-rule": r.rule }, el("td", { text: bt.rules[r.rule] }), cell(r, "final_equity", times), cell(r, "liquidations", count),
        cell(r, "worst_drawdown", fall), el("td", { class: "num", text: `${r.days_cut} of ${r.days}` }),
        cell(r, "events_caught", count, `${count(r.events_caught)} of ${r.events}`))))),
    el("p", { class: "small", text: `${bt.books[bt.book]}, ${bt.leverage}× when not cut, ${bt.settings.cut_leverage}× when cut; equity as a multiple `
      + "of the start; chance: the median of its draws, the 5–95 % band under it" }));
  chart.dataset.rendered = `${bt.book}/${bt.leverage}`;
}

// ------------------------------------------------------------------ replays
function renderReplayList(events) {
  const list = document.getElementById("replay-list");
  const notable = events.events.filter((e) => e.notable);
  if (!notable.length) {
    list.replaceChildren(el("p", { class: "small", text: "no notable event inside the out-of-fold period" }));
    return;
  }
  list.replaceChildren(...notable.map((e) => el("button", {
    type: "button", class: e.side, "data-start": e.start, "aria-pressed": "false", onclick: () => showReplay(e),
  }, `${e.start} · ${sideWord(e.side)} · ${eventSize(e)} · ${e.peak_ratio.toFixed(1)}×`)));
}

async function showReplay(event) {
  for (const b of document.querySelectorAll("#replay-list button")) b.setAttribute("aria-pressed", String(b.dataset.start === event.start));
  coin.view.replay = event.start;  // the replay's own URL
  writeView();
  const box = document.getElementById("replay");
  box.hidden = false;
  box.replaceChildren(el("h3", { text: `Replay: ${event.start}` }), el("p", { class: "small", text: "loading…" }));
  const windowDays = coin.events.replay_window_days;
  const first = maxDay(coin.info.first_answerable_day, shiftDay(event.start, -windowDays));
  const last = minDay(coin.info.data_through, shiftDay(event.start, -1));
  const fail = (text) => {
    box.replaceChildren(el("h3", { text: `${coin.asset} replay: ${event.start}` }), el("p", { class: "error", text }));
    box.dataset.rendered = event.start;
  };
  if (last < first) {
    fail(`No forecast for the days before this event: ${coin.asset} is answerable on ${coin.info.answerable} only.`);
    return;
  }
  let range, built;
  try {  // the days' forecasts with each family's push (/v1/timeline: the same numbers /explain gives per day), in one request
    [range, built] = await Promise.all([api(`/v1/timeline?${query({ asset: coin.asset, start: first, end: last })}`),
      api(`/v1/reconstruction?${query({ asset: coin.asset, event: event.start })}`, undefined, { accept: [404] })]);
  } catch (error) {
    fail(error.message);
    return;
  }
  const days = range.rows.map((r) => r.day);
  const families = Object.keys(CFG.families).filter((f) => range.rows.some((r) => f in r.shap_by_family));
  // top: the probabilities; below, on the same days: each family's push on the cascade log-odds
  const traces = [
    { type: "scatter", mode: "lines+markers", name: "P(cascade)", x: days, y: range.rows.map((r) => r.p_cascade), line: { color: DARK ? "#e8eaed" : "#111", width: 2 }, marker: { size: 4 },
      customdata: range.rows.map((r) => r.basis), hovertemplate: "%{x}: P(cascade) %{y:.2f} (%{customdata})<extra></extra>" },
    { type: "scatter", mode: "lines", name: "P(long squeeze)", x: days, y: range.rows.map((r) => r.p_long), line: { color: SIDE_COLOUR.long, width: 1.2, dash: "dash" },
      hovertemplate: "%{x}: P(long squeeze) %{y:.2f}<extra></extra>" },
    { type: "scatter", mode: "lines", name: "P(short squeeze)", x: days, y: range.rows.map((r) => r.p_short), line: { color: SIDE_COLOUR.short, width: 1.2, dash: "dash" },
      hovertemplate: "%{x}: P(short squeeze) %{y:.2f}<extra></extra>" },
    ...families.map((f) => ({
      type: "bar", name: familyTitle(f), x: days, y: range.rows.map((r) => r.shap_by_family[f] ?? null), marker: { color: familyColour(f) }, xaxis: "x2", yaxis: "y2",
      hovertemplate: `%{x}: ${familyTitle(f)} %{y:+.3f} log-odds<extra></extra>`,
    })),
  ];
  // the lead as the service counts it (/v1/events: the first alert that warned of the event, cascade_radar.rules)
  const horizon = coin.episodes.horizon_days;
  const verdict = event.first_alert
    ? `First alert ${event.first_alert}, ${event.lead_days} day(s) ahead, on the ${sideWord(event.side_at_first_alert)} side ` +
      `(the event: ${sideWord(event.side)}; basis ${event.basis_at_first_alert}).`
    : `No alert in the ${horizon} days before the event.`;
  box.replaceChildren(
    el("h3", { text: `${coin.asset} replay: ${event.start}, ${sideWord(event.side)}, ${eventSize(event)} liquidated, ${event.peak_ratio.toFixed(1)}× the trailing median` }),
    el("p", { class: "summary", id: "replay-verdict", text: verdict }),
    // the build-up, family by family: each family's move and warning sign, the sequence (/v1/reconstruction)
    built && built.text ? el("p", { class: "reconstruction", id: "replay-reconstruction", text: built.text }) : null,
    el("div", { class: "chart", id: "replay-chart" }),
    el("p", { class: "hint downloads" }, "Download (CSV): ",
      el("a", { id: "replay-csv", download: true, href: `/v1/timeline?${query({ asset: coin.asset, start: first, end: last, format: "csv" })}`, text: "these days, with each family's push" }),
      " · ", el("a", { href: `/v1/reconstruction?${query({ asset: coin.asset, event: event.start })}`, text: "the build-up (JSON)" })));
  const signals = await coin.signalsData().catch(() => null);  // the price line; the replay is drawn without it if they fail
  const prices = (signals ? signals.rows : []).filter((r) => r.day >= first && r.day <= event.start && r.price_usd !== null);
  if (prices.length) {
    traces.push({ type: "scatter", mode: "lines", name: "price (USD)", x: prices.map((r) => r.day), y: prices.map((r) => r.price_usd), xaxis: "x3", yaxis: "y3",
      line: { color: DARK ? "#d8dee6" : "#14181d", width: 1.4 }, hovertemplate: "%{x}: price %{y:$,.4~g}<extra></extra>" });
  }
  const Plotly = await plotlyReady;
  const span = [shiftDay(first, -1), shiftDay(event.start, 1)];
  const warned = { type: "rect", xref: "x", yref: "paper", x0: shiftDay(event.start, -horizon), x1: event.start, y0: 0, y1: 1,
    fillcolor: "rgba(180,35,24,0.07)", line: { width: 0 }, layer: "below" };  // the days whose alert would warn of it
  const firstAlert = event.first_alert ? [{ type: "line", xref: "x", yref: "paper", x0: event.first_alert, x1: event.first_alert, y0: 0, y1: 1,
    line: { color: "#b42318", width: 1.5, dash: "dash" } }] : [];
  const eventLine = (yref) => ({ type: "line", xref: yref === "y domain" ? "x" : "x2", yref, x0: event.start, x1: event.start, y0: 0, y1: 1,
    line: { color: SIDE_COLOUR[event.side], width: 2 } });
  await Plotly.newPlot("replay-chart", traces, {
    ...THEME, barmode: "relative", hovermode: "x unified",
    margin: { l: 70, r: 20, t: 10, b: 40 }, legend: { orientation: "h", x: 0, y: NARROW ? -0.06 : -0.12, font: { size: 11 } },
    xaxis: { ...DAY_AXIS, range: span, domain: [0, 1], anchor: "y", showticklabels: false },
    yaxis: { title: { text: "probability" }, range: [0, 1], domain: [0.7, 1], gridcolor: GRID },
    xaxis3: { ...DAY_AXIS, range: span, domain: [0, 1], anchor: "y3", matches: "x", showticklabels: false },
    yaxis3: { title: { text: "price (USD)" }, domain: [0.36, 0.66], gridcolor: GRID },
    xaxis2: { ...DAY_AXIS, range: span, domain: [0, 1], anchor: "y2", matches: "x", title: { text: NARROW ? "" : "day before the event (UTC)" } },
    yaxis2: { title: { text: "each family's push (log-odds)" }, domain: [0, 0.32], zeroline: true, zerolinecolor: "#444", gridcolor: GRID },
    shapes: [warned, ...firstAlert, eventLine("y domain"), eventLine("y2 domain"),
      { type: "line", xref: "paper", yref: "y", x0: 0, x1: 1, y0: coin.episodes.threshold, y1: coin.episodes.threshold, line: { color: "#b42318", width: 1, dash: "dot" } }],
    annotations: [{ x: event.start, y: 1, xref: "x", yref: "y domain", text: `event ${event.start}`, showarrow: false, xanchor: "right", yanchor: "top",
      font: { color: SIDE_COLOUR[event.side] } }],
  }, PLOT_CONFIG);
  box.dataset.rendered = event.start;
}

// ------------------------------------------------------------------ start
// the glossary: static words (cascade_radar/glossary.py); only the coin links are added, from the coins the service knows
async function glossaryPage() {
  coinNav(CFG.assets, null);
  document.body.dataset.loaded = "true";
}

const pages = { overview: overviewPage, coin: coinPage, glossary: glossaryPage };
pages[document.body.dataset.page]().catch((error) => {
  setStatus(error.message, true);
  document.body.dataset.loaded = "error";
});
