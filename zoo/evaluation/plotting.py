"""matplotlib, an optional extra, imported only when a picture is drawn (headless: the Agg backend)."""
from __future__ import annotations

from typing import Any

from zoo.errors import MissingExtraError


def pyplot(purpose: str) -> Any:
    """``matplotlib.pyplot`` on the Agg backend; :class:`MissingExtraError` saying how to install it otherwise."""
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingExtraError(f"{purpose} needs matplotlib, an optional extra: pip install matplotlib "
                                "(or pip install -r requirements-extras.txt)") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
