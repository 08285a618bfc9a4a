"""Square crops of an image, resized for a model, and the way back to full-image pixels.

A box is ``(x0, y0, x1, y1)`` in full-image pixels (float). A :class:`Crop` is the
square of side ``side`` whose top-left corner is ``(x0, y0)``, resampled to ``size``
pixels: crop pixel ``u = (x - x0) * size / side``. A :class:`RotatedCrop` is a square
turned in the image (a hand region: its "up" along the hand), optionally mirrored.
Parts of a square outside the image are black. Pixel coordinates follow OpenCV: the
centre of the top-left pixel is (0, 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Crop:
    x0: float
    y0: float
    side: float  # full-image pixels
    size: int  # crop pixels

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel."""
        return self.size / self.side

    def affine(self) -> np.ndarray:
        """2x3 matrix mapping image pixels to crop pixels."""
        s = self.scale
        return np.array([[s, 0.0, -s * self.x0], [0.0, s, -s * self.y0]])

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Crop pixels ``(..., 2)`` -> image pixels."""
        points = np.asarray(points, dtype=np.float64)
        return points / self.scale + np.array([self.x0, self.y0])

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Image pixels ``(..., 2)`` -> crop pixels."""
        points = np.asarray(points, dtype=np.float64)
        return (points - np.array([self.x0, self.y0])) * self.scale

    def box(self) -> np.ndarray:
        return np.array([self.x0, self.y0, self.x0 + self.side, self.y0 + self.side])


@dataclass(frozen=True)
class RotatedCrop:
    """The square of side ``side`` (image pixels) centred at ``centre``, whose upward
    axis (crop ``-v``) lies along the unit image vector ``up``, resampled to ``size``
    pixels; ``mirrored`` flips the crop's ``u`` axis (a left hand looks like a right one)."""

    centre: tuple[float, float]
    side: float
    up: tuple[float, float]
    size: int
    mirrored: bool = False

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel."""
        return self.size / self.side

    def affine(self) -> np.ndarray:
        """2x3 matrix mapping image pixels to crop pixels."""
        dx, dy = self.up
        right = np.array([-dy, dx]) * (-1.0 if self.mirrored else 1.0)
        down = np.array([-dx, -dy])
        linear = self.scale * np.stack([right, down])
        offset = np.full(2, 0.5 * (self.size - 1)) - linear @ np.asarray(self.centre, dtype=np.float64)
        return np.hstack([linear, offset[:, None]])

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Crop pixels ``(..., 2)`` -> image pixels."""
        matrix = self.affine()
        return (np.asarray(points, dtype=np.float64) - matrix[:, 2]) @ np.linalg.inv(matrix[:, :2]).T

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Image pixels ``(..., 2)`` -> crop pixels."""
        matrix = self.affine()
        return np.asarray(points, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]

    def box(self) -> np.ndarray:
        """The axis-aligned box ``(4,)`` holding the turned square."""
        half = 0.5 * self.side * (abs(self.up[0]) + abs(self.up[1]))
        x, y = self.centre
        return np.array([x - half, y - half, x + half, y + half])


def square_around(box, margin: float, size: int, min_side: float = 1.0) -> Crop:
    """The square centred on ``box``, its side the box's longer side times ``1 + 2 * margin``."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0, 0.0) * (1.0 + 2.0 * margin)
    side = max(side, float(min_side))
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    return Crop(cx - 0.5 * side, cy - 0.5 * side, side, int(size))


def extract(image: np.ndarray, crop: Crop | RotatedCrop) -> np.ndarray:
    """The crop's pixels ``(size, size, 3)`` uint8, bilinear; when the crop shrinks the
    image more than twice, the image is first area-averaged by an integer factor (no aliasing)."""
    matrix = crop.affine()
    factor = int(0.5 / crop.scale) if crop.scale < 0.5 else 1
    if factor > 1:
        x0, y0, x1, y1 = crop.box()
        # Only the part of the image under the crop is shrunk.
        left, top = max(int(np.floor(x0)) // factor * factor, 0), max(int(np.floor(y0)) // factor * factor, 0)
        right, bottom = min(int(np.ceil(x1)) + factor, image.shape[1]), min(int(np.ceil(y1)) + factor, image.shape[0])
        if right - left >= factor and bottom - top >= factor:
            region = image[top:bottom, left:right]
            small = cv2.resize(region, ((right - left) // factor, (bottom - top) // factor), interpolation=cv2.INTER_AREA)
            # Pixel centres: x = factor * (x_small + 0.5) - 0.5 + left
            origin = np.array([left, top]) + 0.5 * factor - 0.5
            shrunk = np.hstack([factor * matrix[:, :2], (matrix[:, 2] + matrix[:, :2] @ origin)[:, None]])
            return cv2.warpAffine(small, shrunk, (crop.size, crop.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return cv2.warpAffine(image, matrix, (crop.size, crop.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def box_of_points(points: np.ndarray) -> np.ndarray | None:
    """Bounding box ``(4,)`` of the finite points ``(N, 2)``; None when there is none."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    points = points[np.all(np.isfinite(points), axis=1)]
    if len(points) == 0:
        return None
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def clip_box(box: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """``box`` clipped to the image; None when nothing of it is inside."""
    x0, y0, x1, y1 = box
    x0, x1 = max(x0, 0.0), min(x1, width - 1.0)
    y0, y1 = max(y0, 0.0), min(y1, height - 1.0)
    if x1 <= x0 or y1 <= y0:
        return None
    return np.array([x0, y0, x1, y1])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``a (N, 4)`` and ``b (4,)`` -> ``(N,)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64)
    ix = np.clip(np.minimum(a[:, 2], b[2]) - np.maximum(a[:, 0], b[0]), 0, None)
    iy = np.clip(np.minimum(a[:, 3], b[3]) - np.maximum(a[:, 1], b[1]), 0, None)
    inter = ix * iy
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
