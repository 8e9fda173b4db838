"""Python's cyclic garbage collector, tuned while a model step streams a partition.

Why: a step allocates a few dozen short-lived objects per request (request and reply dicts,
futures, handles, row dicts) in a process that already holds millions of long-lived ones (Dagster,
the code location, Polars, Arrow). With the default thresholds (700, 10, 10), measured on
`teacher_responses` over 4,000 rows against the fake server at 128 requests in flight, the
collector spent 4.9 s in the process, of which ~1.8 s at start-up and exit: ~3 s inside a
~12 s request window (~240 young, 23 middle and 3 full collections, the older passes walking
the whole heap), the largest single cost that kept the asset near 0.55 of a bare client.

So for the duration of a step: the objects that exist when it starts (imports, the code
location) are frozen out of the collector's view (`gc.freeze`), and young collections run every
50,000 allocations instead of 700. Reference counting frees nearly everything a step allocates
anyway; cycles are still collected. On exit the previous thresholds come back and frozen
objects return to the oldest generation (`gc.unfreeze`, unless the process had frozen objects
of its own before), so nothing is kept for ever. Nested or concurrent steps in one process
share one tuning: the last to finish restores it.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

#: Allocations between young collections, and young (then middle) collections between older
#: ones, while a step runs.
STEP_THRESHOLDS = (50_000, 20, 10)

_lock = threading.Lock()
_active = 0
_saved: tuple[int, int, int] | None = None
_unfreeze = False  # only undo a freeze of ours: someone else's frozen objects stay frozen


@contextlib.contextmanager
def steady_collector() -> Iterator[None]:
    """Tune the collector for a streaming step (see the module docstring); restore on exit."""
    global _active, _saved, _unfreeze
    with _lock:
        if _active == 0:
            _saved = gc.get_threshold()
            _unfreeze = gc.get_freeze_count() == 0
            gc.freeze()
            gc.set_threshold(*STEP_THRESHOLDS)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                if _unfreeze:
                    gc.unfreeze()
                _saved = None
