"""The detector interface every model backend implements, and the factory that picks one.

A detector holds its models (loaded once) and answers two questions about one RGB
image (uint8 ``(H, W, 3)``):

- ``person_boxes(image) -> (N, 5)``: x0, y0, x1, y1, score of every person it sees
  (used to seed the subject when no 3D prior is known);
- ``detect(image, box) -> (59, 3)``: float32 x, y (full-image pixels), confidence of
  the person in ``box`` (x0, y0, x1, y1): COCO-17 body, left hand 21, right hand 21,
  NaN where missing.

A backend that runs several images in one batch (``mmpose``) also implements
``detect_batch(images, boxes) -> list of (59, 3)``; :func:`detect_views` uses it where
present, else calls ``detect`` per image (the same results).

``close()`` frees the models.

Backends are picked by name from :data:`BACKENDS`, the registry: each entry names its
kind (``model``: a detector run on the videos; ``files``: 2D keypoints read from
files), where its code is (imported only when it is used), the ``detect`` sub-section
holding its own settings, and its resource needs per model instance (CPUs, GPUs).
Adding a backend is one module (the detector class and a ``resources(settings)``
function), one line in :data:`BACKENDS`, its name in ``DetectConfig.backend`` and its
settings in ``configs/default.yaml`` (docs/ARCHITECTURE.md shows the file list).

A detector whose hands come from a separate hand model also implements
:class:`HandModel`: then ``detect`` gives the body only and the detect loop searches
each hand in regions from every prior it has (:mod:`detection.hand_search`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from detection.interface import Detector, HandModel, detect_views, hand_model  # noqa: F401 - the backends' interface, re-exported

if TYPE_CHECKING:
    from pipeline.config import DetectConfig


@dataclass(frozen=True)
class ModelResources:
    """What one instance of a backend keeps busy: ``cpus`` CPUs and ``gpus`` GPUs."""

    cpus: int
    gpus: int = 0


@dataclass(frozen=True)
class BackendEntry:
    """A registry entry: ``name`` (``detect.backend``), ``kind`` (``model`` or ``files``),
    ``code`` (``"module:attribute"``: the detector class, or the files reader
    ``(take, settings) -> (keypoints, summary)``), ``settings_section`` (the ``detect``
    sub-section of its own settings, None: none) and ``resources`` (``"module:function"``,
    ``(detect settings) -> ModelResources``)."""

    name: str
    kind: str
    code: str
    settings_section: str | None
    resources: str

    def load(self):
        """The entry's class or function (its module imported now)."""
        return _attribute(self.code)

    def model_resources(self, settings: DetectConfig) -> ModelResources:
        return _attribute(self.resources)(settings)


def _attribute(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


BACKENDS = {
    entry.name: entry
    for entry in (
        BackendEntry("mediapipe", "model", "stages.detect.mediapipe_backend:MediaPipeDetector", None, "stages.detect.mediapipe_backend:resources"),
        BackendEntry("mmpose", "model", "stages.detect.mmpose_backend:MMPoseDetector", "mmpose", "stages.detect.mmpose_backend:resources"),
        BackendEntry("precomputed", "files", "stages.detect.precomputed:read_precomputed", None, "stages.detect.precomputed:resources"),
    )
}
MODEL_BACKENDS = tuple(name for name, entry in BACKENDS.items() if entry.kind == "model")


def backend_entry(settings: DetectConfig) -> BackendEntry:
    """The registry entry of ``settings.backend`` (the ``detect`` config section)."""
    name = settings.backend
    if name not in BACKENDS:
        raise ValueError(f"detect.backend {name!r} is not registered (backends: {', '.join(BACKENDS)})")
    return BACKENDS[name]


def make_detector(settings: DetectConfig) -> Detector:
    """The detector named by ``settings.backend`` (the ``detect`` config section)."""
    entry = backend_entry(settings)
    if entry.kind != "model":
        raise ValueError(f"detect backend {entry.name!r} is not a model backend (model backends: {', '.join(MODEL_BACKENDS)})")
    return entry.load()(settings)
