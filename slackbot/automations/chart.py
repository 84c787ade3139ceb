"""The digest's chart: tasks per day by outcome, as a small PNG.

Drawn on a `Figure` of its own with the Agg canvas, never through pyplot's global state, so
digests of several channels can be drawn at once on different threads.
"""

from __future__ import annotations

import io
from datetime import date

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

SERIES = (("done", "Done", "#2eb67d"), ("failed", "Failed", "#e01e5a"), ("stopped", "Stopped", "#9e9e9e"))


def chart_png(history: dict[date, dict[str, int]]) -> bytes | None:
    """A stacked bar per day (in date order); None when fewer than two days had any task: one bar
    says nothing the digest's text does not."""
    days = sorted(history)
    if sum(1 for d in days if any(history[d].values())) < 2:
        return None
    fig = Figure(figsize=(8, 3), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    positions = range(len(days))
    bottom = [0] * len(days)
    for key, label, colour in SERIES:
        values = [history[d].get(key, 0) for d in days]
        ax.bar(positions, values, bottom=bottom, color=colour, label=label, width=0.7)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xticks(list(positions), [f"{d:%b} {d.day}" for d in days], fontsize=8)
    ax.set_xlim(-0.6, len(days) - 0.4)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
    ax.tick_params(axis="y", labelsize=8)
    ax.tick_params(axis="x", length=0)
    ax.set_ylabel("tasks", fontsize=9)
    ax.grid(axis="y", color="#e6e6e6", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    handles, labels = ax.get_legend_handles_labels()  # listed top down, as the bars stack
    ax.legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
    ax.set_title("Tasks per day", loc="left", fontsize=10)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
