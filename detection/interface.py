"""What the detect loop needs of a detector, and two helpers on it (pure: no files, no Ray).

A detector holds its models (loaded once) and answers two questions about one RGB image
(uint8 ``(H, W, 3)``):

- ``person_boxes(image) -> (N, 5)``: x0, y0, x1, y1, score of every person it sees
  (used to seed the subject when no 3D prior is known);
- ``detect(image, box) -> (59, 3)``: float32 x, y (full-image pixels), confidence of
  the person in ``box`` (x0, y0, x1, y1): COCO-17 body, left hand 21, right hand 21,
  NaN where missing.

A backend that runs several images in one batch also implements ``detect_batch(images,
boxes) -> list of (59, 3)`` (:func:`detect_views` uses it where present). A detector
whose hands come from a separate hand model also implements :class:`HandModel`: then
``detect`` gives the body only and the loop searches each hand in regions from every
prior it has (:mod:`detection.hand_search`). The backends themselves and their registry
are the detect stage's (:mod:`stages.detect.backend`).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Detector(Protocol):
    name: str

    def person_boxes(self, image: np.ndarray) -> np.ndarray: ...

    def detect(self, image: np.ndarray, box: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


class HandModel(Protocol):
    """A hand landmark model that can be pointed at a region (``mediapipe``)."""

    def hand_in_region(self, image: np.ndarray, crop) -> np.ndarray:
        """``(21, 3)`` x, y (full-image pixels), presence score of the hand in a turned
        square (:class:`detection.crops.RotatedCrop`)."""
        ...

    def hands_in_box(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """``(N, 21, 3)`` x, y (full-image pixels), 0 of the hands a hand detector finds around ``box``."""
        ...


def detect_views(detector, images: list[np.ndarray], boxes: list[np.ndarray]) -> list[np.ndarray]:
    """``detect(image, box)`` for each pair, as one batch where the detector batches."""
    if not images:
        return []
    batch = getattr(detector, "detect_batch", None)
    if batch is not None:
        return batch(images, boxes)
    return [detector.detect(image, box) for image, box in zip(images, boxes)]


def hand_model(detector) -> HandModel | None:
    """The detector as a :class:`HandModel` when it is one and its hand models are loaded, else None."""
    if hasattr(detector, "hand_in_region") and hasattr(detector, "hands_in_box") and detector.settings.detect_hands:
        return detector
    return None
