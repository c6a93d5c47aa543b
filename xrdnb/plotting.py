"""Figures the chapters and the explorer share: crystal cells, patterns, landscape slices, tables of rates.

Every function draws on a matplotlib ``Axes`` it is given (or returns a new ``Figure``) and
takes explicit data (tensors, rows); none reads results or runs an experiment.
"""

from __future__ import annotations

__all__: list[str] = []
