"""What every live provider connector shares: errors that name provider and endpoint, a rate
limiter that respects the provider's published limit, and retries with backoff on 429 / 5xx."""

from __future__ import annotations

import os
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd

SECRET_QUERY = re.compile(r"(?i)\b(token|key|api_key|apikey|api-key|access_token|secret)=([^&\s\"'<>]+)")
SECRET_VARIABLE = re.compile(r"^CASCADE_RADAR_.*(KEY|TOKEN|SECRET|WEBHOOK)")


def configured_secrets() -> list[str]:
    """Values of the environment's secrets (provider keys, tokens, webhook URLs), longest first."""
    values = [v for k, v in os.environ.items() if SECRET_VARIABLE.match(k) and len(v) >= 4]
    return sorted(set(values), key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every configured secret and every ``token=`` / ``key=`` / ``api_key=`` query value masked."""
    for secret in configured_secrets():
        text = text.replace(secret, "***")
    return SECRET_QUERY.sub(lambda m: f"{m.group(1)}=***", text)


def tidy(body: str, limit: int = 160) -> str:
    """A provider's error page as one short line: tags stripped, whitespace collapsed, cut at ``limit``."""
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ProviderError(Exception):
    """A provider answered with something we cannot use; names provider, endpoint and what was wrong.

    The message is redacted: provider pages and URLs can echo keys sent as query parameters.
    """

    def __init__(self, provider: str, endpoint: str, message: str) -> None:
        message = redact(message)
        super().__init__(f"{provider} {endpoint}: {message}")
        self.provider, self.endpoint, self.message = provider, endpoint, message


class QuotaExhausted(ProviderError):
    """The provider's quota is spent; ``resume_at`` says when to try again."""

    def __init__(self, provider: str, endpoint: str, resume_at: pd.Timestamp) -> None:
        super().__init__(provider, endpoint, f"quota exhausted; resume after {resume_at:%Y-%m-%d %H:%M} UTC")
        self.resume_at = resume_at
        self.partial: pd.DataFrame | None = None  # what the connector fetched before the quota ran out


class NoNetwork(ProviderError):
    """The provider could not be reached at all (no route, DNS failure, connection refused)."""


class MissingKey(ProviderError):
    """The provider needs an API key that is not configured."""


@dataclass
class RateLimit:
    """At most ``calls`` requests per ``period`` seconds (a sliding window)."""

    calls: int
    period: float

    def __post_init__(self) -> None:
        self._times: deque[float] = deque()

    def wait(self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep, cost: int = 1) -> None:
        """Wait until ``cost`` more calls fit the window (a provider may count one request as several calls)."""
        cost = min(max(cost, 1), self.calls)
        now = clock()
        while self._times and now - self._times[0] >= self.period:
            self._times.popleft()
        if len(self._times) + cost > self.calls:
            oldest_needed = self._times[len(self._times) + cost - self.calls - 1]
            sleep(max(0.0, self.period - (now - oldest_needed)))
            for _ in range(len(self._times) + cost - self.calls):
                self._times.popleft()
        stamp = clock()
        self._times.extend([stamp] * cost)


@dataclass
class RetryPolicy:
    attempts: int = 5
    backoff: float = 1.0  # seconds; doubles per attempt
    max_wait: float = 60.0
    retry_429: bool = True  # False where every retry spends a small daily quota (BGeometrics): a 429 stops at once

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_wait)
        return min(self.backoff * 2**attempt, self.max_wait)


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


class HttpSource:
    """GET JSON from one provider with rate limiting, timeouts and retries."""

    def __init__(self, provider: str, base_url: str, *, headers: dict[str, str] | None = None, rate: RateLimit,
                 retry: RetryPolicy | None = None, timeout: float = 30.0, sleep: Callable[[float], None] = time.sleep,
                 client: httpx.Client | None = None) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.rate = rate
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.client = client or httpx.Client(timeout=timeout, headers={"User-Agent": "cascade-radar/0.1", **(headers or {})})
        self.requests = 0

    def get_json(self, endpoint: str, params: dict[str, Any] | None = None, cost: int = 1) -> Any:  # noqa: ANN401 - JSON
        """The decoded JSON body of ``GET base_url + endpoint``; raises ProviderError subclasses. ``cost``: how many calls
        the provider counts this request as (Coinalyze: one per symbol)."""
        url = f"{self.base_url}{endpoint}"
        last = ""
        for attempt in range(self.retry.attempts):
            self.rate.wait(sleep=self.sleep, cost=cost)
            self.requests += 1
            try:
                response = self.client.get(url, params=params)
            except (httpx.ConnectError, httpx.UnsupportedProtocol) as exc:
                raise NoNetwork(self.provider, endpoint, f"cannot reach {self.base_url} ({exc.__class__.__name__})") from None
            except httpx.TimeoutException:
                last = "timed out"
                self.sleep(self.retry.delay(attempt, None))
                continue
            except httpx.TransportError as exc:
                last = f"transport error {exc.__class__.__name__}"
                self.sleep(self.retry.delay(attempt, None))
                continue
            if response.status_code == 429 or response.status_code >= 500:
                last = f"HTTP {response.status_code}: {tidy(response.text, 120)}"
                wait = retry_after_seconds(response.headers)
                if response.status_code == 429 and (not self.retry.retry_429 or (wait is not None and wait > self.retry.max_wait)):
                    # a quota, not a burst: stop now and say when to resume instead of sleeping on it
                    raise QuotaExhausted(self.provider, endpoint, pd.Timestamp.now(tz="UTC").tz_localize(None) + pd.Timedelta(seconds=wait or 3600.0))
                if attempt + 1 < self.retry.attempts:
                    self.sleep(self.retry.delay(attempt, retry_after_seconds(response.headers)))
                    continue
                if response.status_code == 429:
                    wait = retry_after_seconds(response.headers) or 3600.0
                    raise QuotaExhausted(self.provider, endpoint, pd.Timestamp.now(tz="UTC").tz_localize(None) + pd.Timedelta(seconds=wait))
                break
            if response.status_code >= 400:
                raise ProviderError(self.provider, endpoint, f"HTTP {response.status_code}: {tidy(response.text)}")
            try:
                return response.json()
            except ValueError:
                raise ProviderError(self.provider, endpoint, f"malformed body (not JSON): {tidy(response.text, 100)!r}") from None
        raise ProviderError(self.provider, endpoint, f"gave up after {self.retry.attempts} attempts ({last})")


SIGNIFICANT_DIGITS = 12


def converted(values: np.ndarray | list[float]) -> np.ndarray:
    """Values after a unit conversion (percent to fraction, MVRV to NUPL), rounded to 12 significant digits: the conversion's
    float noise (``1 - 1/m`` is 1e-16 off) is below any provider's precision, yet it would break ties with the stored
    history's values that the expanding-percentile features count."""
    return np.array([float(f"{v:.{SIGNIFICANT_DIGITS}g}") if np.isfinite(v) else v for v in np.asarray(values, dtype=float)])


def day_start(ts: pd.Timestamp) -> int:
    """Milliseconds since the epoch of a UTC day start."""
    return int(pd.Timestamp(ts).normalize().value // 1_000_000)


def utc_days(values: Any, unit: str) -> pd.DatetimeIndex:  # noqa: ANN401 - array-like of epochs
    """Epoch numbers (``unit`` "ms" or "s") to naive UTC day starts."""
    stamps = pd.DatetimeIndex(pd.to_datetime(np.asarray(values, dtype="int64"), unit=unit, utc=True))
    return pd.DatetimeIndex(stamps.tz_localize(None).normalize(), name="date")


def require(row: dict[str, Any], key: str, provider: str, endpoint: str) -> Any:  # noqa: ANN401
    """``row[key]`` or a ProviderError naming the missing field."""
    if not isinstance(row, dict) or key not in row:
        raise ProviderError(provider, endpoint, f"response row lacks field '{key}': {str(row)[:120]}")
    return row[key]


def require_float(row: dict[str, Any], key: str, provider: str, endpoint: str) -> float:
    """``row[key]`` as a number, or a ProviderError naming the missing or non-numeric field."""
    return as_float(require(row, key, provider, endpoint), key, provider, endpoint)


def require_list(body: Any, what: str, provider: str, endpoint: str) -> list[Any]:  # noqa: ANN401 - JSON
    """``body`` if it is a JSON list, else a ProviderError saying what was expected."""
    if not isinstance(body, list):
        raise ProviderError(provider, endpoint, f"expected a list of {what}, got {type(body).__name__}")
    return body


def as_float(value: Any, field: str, provider: str, endpoint: str) -> float:  # noqa: ANN401
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ProviderError(provider, endpoint, f"field '{field}' is not a number: {value!r}") from None
