"""matplotlib, imported only when a figure is drawn: nothing that serves predictions pulls it in."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

EVENT_COLOUR = {"long": "tab:red", "short": "tab:blue", "two-sided": "tab:purple"}  # an event's side (rules.EVENT_SIDES) in a figure


def pyplot() -> Any:  # noqa: ANN401 - the matplotlib.pyplot module
    """matplotlib's pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Figure, path: Path, dpi: int = 110) -> Path:
    """Write ``fig`` with every label inside the image (tight bounding box) and free it."""
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    return path
