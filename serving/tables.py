"""The API's answers as CSV for a spreadsheet: one row per day, event or episode, nested fields flattened."""

from __future__ import annotations

import pandas as pd
from starlette.responses import Response

FORMATS = ("json", "csv")
SIGNALS_FORMATS = (*FORMATS, "signals")  # /v1/signals also as a POST /predict_signals body


def rows_csv(title: str, rows: list[dict[str, object]], columns: list[str] | None = None) -> str:
    """``rows`` as CSV under a ``# title`` line: a nested dict becomes ``key.sub`` columns (``shap_by_family.funding``), a
    list its items joined by ``+``; ``columns`` fixes the header when there are no rows."""
    flat = pd.json_normalize(rows) if rows else pd.DataFrame(columns=columns or [])
    for column in flat.columns:
        if flat[column].map(lambda v: isinstance(v, list)).any():
            flat[column] = flat[column].map(lambda v: "+".join(map(str, v)) if isinstance(v, list) else v)
    return f"# {title}\n" + flat.to_csv(index=False, float_format="%.10g")


def csv_response(text: str, filename: str) -> Response:
    """A CSV download: ``text/csv`` with a file name the browser saves it under."""
    return Response(text, media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'})
