"""How many examples the costly property and fuzz tests draw (Hypothesis).

Each such test names its full count through :func:`examples`, which scales it by
``WHATSAPP_TEST_EXAMPLES`` (a fraction, 1 when unset), never below ``MINIMUM``:

    @hypothesis_settings(max_examples=examples(300), ...)

Every full count is drawn once in each CI run, on PostgreSQL (``make test``'s PostgreSQL run, where
the fast paths differ from the Python rules). The runs that repeat the same code paths draw a
fifth, from every input class: ``make test``'s SQLite run, which runs under the coverage tracer
(coverage needs the paths, not the count), and the matrix (``noxfile.py``: the other Python and
Django versions, where the framework differs, not the inputs). The cheap property tests keep
Hypothesis's own default count everywhere.
"""

from __future__ import annotations

import math
import os


def _scale(value: str) -> float:
    try:
        scale = float(value)
    except ValueError:
        scale = math.nan
    if not 0 < scale <= 1:
        raise ValueError(f"WHATSAPP_TEST_EXAMPLES must be a fraction in (0, 1], not {value!r}")
    return scale


#: The fraction of each count to draw: 1 (every example) unless the environment says less.
SCALE = _scale(os.environ.get("WHATSAPP_TEST_EXAMPLES", "1"))
#: The fewest examples a scaled test draws.
MINIMUM = 20


def examples(count: int) -> int:
    """``count`` scaled by ``WHATSAPP_TEST_EXAMPLES`` (``count`` itself at 1), at least
    ``MINIMUM`` and never more than ``count``."""
    if SCALE == 1:
        return count
    return min(count, max(MINIMUM, math.ceil(count * SCALE)))
