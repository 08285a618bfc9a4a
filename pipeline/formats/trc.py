"""TRC marker files (OpenSim / Pose2Sim): read and write.

A TRC file is tab-separated text: a 5-line header (path, rate keys, rate values,
marker names, X1 Y1 Z1 ... labels), then one line per frame: frame number, time, and
X Y Z per marker (empty fields for missing values). OpenSim expects Y up; our world
frame is Z up, so writers and readers take an explicit axis permutation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_write_text

# TRC (X, Y, Z) = world (y, z, x): a Z-up world seen as OpenSim's Y-up (Pose2Sim's choice).
TRC_AXES_FROM_Z_UP_WORLD = (1, 2, 0)


class TrcFormatError(ValueError):
    """Malformed TRC file; the message names the file and line."""


@dataclass(frozen=True)
class TrcData:
    """Markers of a TRC file: ``points (frames, markers, 3)`` in ``units``, NaN where missing."""

    marker_names: tuple[str, ...]
    frame_numbers: np.ndarray  # (frames,) int, as written in the file
    times: np.ndarray  # (frames,) seconds
    points: np.ndarray
    rate: float  # frames per second
    units: str

    def to_world(self, axes=TRC_AXES_FROM_Z_UP_WORLD) -> np.ndarray:
        """Points ``(frames, markers, 3)`` in the world frame whose axes ``axes`` the file stores."""
        world = np.empty_like(self.points)
        world[..., list(axes)] = self.points
        return world


def read_trc(path: str | Path) -> TrcData:
    """Read a TRC file (any number of markers; missing values become NaN)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: TRC file not found") from None
    if len(lines) < 5:
        raise TrcFormatError(f"{path}: a TRC file needs 5 header lines, found {len(lines)} lines")
    keys, values = lines[1].split("\t"), lines[2].split("\t")
    header = dict(zip((key.strip() for key in keys), (value.strip() for value in values)))
    try:
        rate = float(header.get("DataRate", header.get("CameraRate")))
        num_markers = int(header["NumMarkers"])
    except (KeyError, TypeError, ValueError):
        raise TrcFormatError(f"{path}: line 3: missing or invalid DataRate / NumMarkers") from None
    names = tuple(name.strip() for name in lines[3].split("\t")[2:] if name.strip())
    if len(names) != num_markers:
        raise TrcFormatError(f"{path}: line 4: {len(names)} marker names for NumMarkers = {num_markers}")
    rows = []
    for number, line in enumerate(lines[5:], start=6):
        if not line.strip():
            continue
        fields = line.split("\t")
        fields += [""] * (2 + 3 * num_markers - len(fields))
        try:
            rows.append([float(field) if field.strip() else math.nan for field in fields[: 2 + 3 * num_markers]])
        except ValueError:
            raise TrcFormatError(f"{path}: line {number}: a value is not a number") from None
    table = np.array(rows, dtype=np.float64).reshape(len(rows), 2 + 3 * num_markers)
    return TrcData(
        marker_names=names,
        frame_numbers=table[:, 0].astype(int),
        times=table[:, 1],
        points=table[:, 2:].reshape(len(rows), num_markers, 3),
        rate=rate,
        units=header.get("Units", "m"),
    )


def write_trc(
    path: str | Path,
    points_world: np.ndarray,
    marker_names: tuple[str, ...] | list[str],
    rate: float,
    axes=TRC_AXES_FROM_Z_UP_WORLD,
    first_frame: int = 0,
) -> Path:
    """Write world points ``(frames, markers, 3)`` metres as TRC (NaN -> empty fields)."""
    points = np.asarray(points_world, dtype=np.float64)[..., list(axes)]
    num_frames, num_markers, _ = points.shape
    if len(marker_names) != num_markers:
        raise ValueError(f"{len(marker_names)} marker names for {num_markers} markers")
    name = Path(path).name
    lines = [
        f"PathFileType\t4\t(X/Y/Z)\t{name}",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
        f"{rate:g}\t{rate:g}\t{num_frames}\t{num_markers}\tm\t{rate:g}\t{first_frame}\t{num_frames}",
        "Frame#\tTime\t" + "\t\t\t".join(marker_names) + "\t\t",
        "\t\t" + "\t".join(f"X{i}\tY{i}\tZ{i}" for i in range(1, num_markers + 1)),
    ]
    for frame in range(num_frames):
        values = "\t".join("" if math.isnan(value) else repr(float(value)) for value in points[frame].reshape(-1))
        lines.append(f"{first_frame + frame + 1}\t{(first_frame + frame) / rate!r}\t{values}")
    return atomic_write_text(path, "\n".join(lines) + "\n")
