"""The accepted range of a settings field, for the pure libraries' settings schemas.

A library's settings dataclass (``TriangulationSettings``, ``QualityThresholds``,
``DetectionSettings``, the refine and body-model fit settings) is also the schema of its
section in configs/default.yaml: the loader (``pipeline.config``) checks each value
against the range its field carries here. This is the lowest pure package, so every
library can use it.
"""

from __future__ import annotations


def bounds(low=None, high=None, *, low_open: bool = False) -> dict:
    """A field's ``metadata``: values must be ``>= low`` (``> low`` when ``low_open``) and ``<= high``; None: unbounded."""
    return {"low": low, "high": high, "low_open": low_open}


POSITIVE = bounds(0.0, low_open=True)  # values > 0
