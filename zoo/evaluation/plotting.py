"""matplotlib, an optional extra, imported only when a picture is drawn (headless: the Agg backend)."""
from __future__ import annotations

from typing import Any

from zoo.evaluation.extras import optional_import


def pyplot(purpose: str) -> Any:
    """``matplotlib.pyplot`` on the Agg backend; :class:`MissingExtraError` saying how to install it otherwise."""
    optional_import("matplotlib", purpose, "matplotlib").use("Agg")
    import matplotlib.pyplot as plt

    return plt
