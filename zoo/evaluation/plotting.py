"""matplotlib, an optional extra, imported only when a picture is drawn (headless: the Agg backend), and the two
conventions every figure of many checkpoints follows: one distinct line style per checkpoint, and one legend for
the whole figure, outside its panels."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.evaluation.extras import optional_import
from zoo.evaluation.output import output_folder

LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D")
COLOURS = 10  # matplotlib's default cycle, C0 ... C9


def pyplot(purpose: str) -> Any:
    """``matplotlib.pyplot`` on the Agg backend; :class:`MissingExtraError` saying how to install it otherwise."""
    optional_import("matplotlib", purpose, "matplotlib").use("Agg")
    import matplotlib.pyplot as plt

    return plt


def series_style(index: int) -> dict[str, str]:
    """``color``, ``linestyle`` and ``marker`` of the ``index``-th series (0-based) of a figure: the ten default
    colours, then the same colours with the next line style and marker, so 40 series stay distinct."""
    round_ = (index // COLOURS) % len(LINE_STYLES)
    return {"color": f"C{index % COLOURS}", "linestyle": LINE_STYLES[round_], "marker": MARKERS[round_]}


def add_figure_legend(fig: Any) -> Any:
    """One legend for all of ``fig``'s panels, to the right of them: every labelled series once, in the order drawn
    (a checkpoint drawn in several panels is listed once). Returns the legend, or ``None`` if nothing is labelled."""
    handles: dict[str, Any] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if not handles:
        return None
    return fig.legend(list(handles.values()), list(handles), loc="center left", bbox_to_anchor=(1.0, 0.5),
                      fontsize="small", ncol=1 + len(handles) // 25)


def save_figure(fig: Any, out: str | Path, dpi: int = 110) -> Path:
    """Lay out ``fig`` with its legend (:func:`add_figure_legend`) outside the panels, write it to ``out`` (creating
    its folder, removed again if the writing fails) and close it; returns the path."""
    add_figure_legend(fig)
    fig.tight_layout()
    path = Path(out)
    try:
        with output_folder(path.parent):
            fig.savefig(path, dpi=dpi, bbox_inches="tight")
    finally:
        pyplot("saving a figure").close(fig)
    return path
