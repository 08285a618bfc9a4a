"""Stage ``export``: 3D joints and their projections -> Ego-Exo4D annotation documents.

One document per part (``body``: the 17 COCO joints; ``hand``: 21 left + 21 right)::

    {"<frame>": [{"metadata": {"take_uid", "take_name", "frame_number"},
                  "annotation3D": {"<joint>": {"x", "y", "z", "num_views_for_3d"}},
                  "annotation2D": {"<camera>": {"<joint>": {"x", "y", "placement": "auto"}}}}]}

A joint that was not reconstructed is absent (never zero); a 2D entry exists only
where the joint projects inside that camera's image, in front of it.
"""

from __future__ import annotations

import numpy as np

from fitting.skeleton import BODY, LEFT_HAND, RELEASED_NAMES, RIGHT_HAND
from triangulation.cameras import Camera

EXPORT_PARTS = {
    "body": np.arange(BODY.start, BODY.stop),
    "hand": np.concatenate([np.arange(LEFT_HAND.start, LEFT_HAND.stop), np.arange(RIGHT_HAND.start, RIGHT_HAND.stop)]),
}


def project_into(cameras: list[Camera], points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(views, frames, joints, 2)`` and visibility ``(views, frames, joints)`` of ``points (frames, joints, 3)``.

    Visible: reconstructed, in front of the camera and inside its image (when its size is known).
    """
    pixels = np.stack([camera.project(points) for camera in cameras])
    visible = np.stack([camera.in_front(points) for camera in cameras]) & np.isfinite(pixels).all(axis=-1)
    for v, camera in enumerate(cameras):
        if camera.image_size is not None:
            width, height = camera.image_size
            x, y = pixels[v, ..., 0], pixels[v, ..., 1]
            visible[v] &= (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    return pixels, visible


def annotation_document(
    joints: np.ndarray,
    points: np.ndarray,
    num_views: np.ndarray,
    camera_names: list[str],
    pixels: np.ndarray,
    visible: np.ndarray,
    take_name: str,
    take_uid: str,
) -> dict:
    """The Ego-Exo4D annotation of the joints ``joints`` (indices into the 59) for every frame.

    ``points (frames, 59, 3)`` metres, ``num_views (frames, 59)``, ``pixels (views, frames, 59, 2)``,
    ``visible (views, frames, 59)``. Frames where no joint of the part was reconstructed are absent.
    """
    names = [RELEASED_NAMES[j] for j in joints]
    reconstructed = np.isfinite(points[:, joints]).all(axis=-1)  # (frames, joints)
    document = {}
    for frame in np.flatnonzero(reconstructed.any(axis=1)):
        present = np.flatnonzero(reconstructed[frame])
        annotation_3d = {
            names[k]: {
                "x": float(points[frame, joints[k], 0]),
                "y": float(points[frame, joints[k], 1]),
                "z": float(points[frame, joints[k], 2]),
                "num_views_for_3d": int(num_views[frame, joints[k]]),
            }
            for k in present
        }
        annotation_2d = {}
        for v, camera in enumerate(camera_names):
            shown = present[visible[v, frame, joints[present]]]
            if shown.size:
                annotation_2d[camera] = {
                    names[k]: {
                        "x": float(pixels[v, frame, joints[k], 0]),
                        "y": float(pixels[v, frame, joints[k], 1]),
                        "placement": "auto",
                    }
                    for k in shown
                }
        document[str(int(frame))] = [
            {
                "metadata": {"take_uid": take_uid, "take_name": take_name, "frame_number": int(frame)},
                "annotation3D": annotation_3d,
                "annotation2D": annotation_2d,
            }
        ]
    return document
