"""An export folder that appears whole or not at all.

Everything is written into a hidden temporary folder beside the destination; only when the
writer finishes is it renamed into place (replacing a previous export, whose subsets are thus
never left behind). A failure removes the temporary folder and leaves the previous export, if
any, untouched.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_folder(destination: str | Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it becomes `destination` (replacing it)."""
    destination = Path(destination).absolute()
    destination.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    staging = destination.parent / f".{destination.name}.tmp-{token}"
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if destination.exists():
        # Two renames: the old export moves aside, the new one takes its name, the old one is
        # removed. A crash between them leaves the old export under `.NAME.old-*`, never a mix.
        retired = destination.parent / f".{destination.name}.old-{token}"
        os.replace(destination, retired)
        os.replace(staging, destination)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, destination)
