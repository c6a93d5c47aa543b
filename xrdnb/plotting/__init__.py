"""Figures the chapters and the explorer share: crystal cells, patterns, landscape slices, tables of rates.

Every function draws on a matplotlib ``Axes`` it is given (or returns a new ``Figure``) and
takes explicit data (tensors, rows); none reads results or runs an experiment. The functions
live in one module per subject and are all importable from here (``xrdnb.plotting.draw_slice``).
"""

from __future__ import annotations

from . import correlations, descent, distortions, landscapes, primitives, representation, search
from .correlations import *  # noqa: F403
from .descent import *  # noqa: F403
from .distortions import *  # noqa: F403
from .landscapes import *  # noqa: F403
from .primitives import *  # noqa: F403
from .representation import *  # noqa: F403
from .search import *  # noqa: F403

__all__ = [
    *correlations.__all__,
    *primitives.__all__,
    *landscapes.__all__,
    *descent.__all__,
    *representation.__all__,
    *distortions.__all__,
    *search.__all__,
]
