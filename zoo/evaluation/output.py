"""Where analysis commands write: a folder that exists only if they succeed."""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Iterator


def _outermost_missing(folder: Path) -> Path | None:
    """The outermost of ``folder`` and its parents that does not exist yet; ``None`` if ``folder`` exists."""
    missing = None
    for path in (folder, *folder.parents):
        if path.exists():
            break
        missing = path
    return missing


@contextlib.contextmanager
def output_folder(path: str | Path) -> Iterator[Path]:
    """``path`` as a folder to write into, created with its missing parents. If the block raises, the folders this
    call created are removed again with whatever was written into them, so a failed command leaves no empty or
    half-written folder behind; a folder that existed before is left in place."""
    folder = Path(path)
    created = _outermost_missing(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
