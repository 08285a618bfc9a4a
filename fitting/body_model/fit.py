"""Fit a body model to the refined 59 joints of a take.

Unknowns: one shape for the whole take; per frame the pose (axis-angle per articulated
joint), a global rotation and a translation (world = R model + t). Cost, each term over
its standard deviation (all in :class:`FitSettings`):

- data: per joint, the distance between the model's point and the refined joint,
  over ``body_sigma_mm`` or ``hand_sigma_mm``, under a Cauchy loss of scale
  ``robust_scale`` (a joint that disagrees by many sigmas barely pulls), weighted by the
  joint's quality (refine's confidence; ``filled_weight`` for gap-filled samples);
- priors: pose rotations (body and finger joints have their own sigma, radians) and
  the shape (the model's own units);
- smoothness: second differences over frames of the pose, the global rotation and the
  translation, as accelerations over their sigmas (rad/s^2, m/s^2).

Steps: (1) the global rotation and translation of every frame from the torso joints
(weighted Kabsch on shoulders and hips against the model's rest pose), which puts
every frame in the right place and heading; (2) the shape with the poses of
``shape_frames`` frames spread over the take (L-BFGS, body joints); (3) with the shape
fixed, the take in consecutive windows of ``window_frames`` frames, each warm-started
from the pose of the frame solved before it, the smoothness terms reaching into the two
frames solved before the window: first the body (pose, global rotation and
translation against the body joints and the hand wrists, at the body's sigma), then the
hands (finger and wrist rotations against the 21-joint tracks, at the hands' sigma).
The two steps keep each problem well conditioned: a hand sigma of millimetres on
points half a metre from the shoulder would otherwise dominate the arm. L-BFGS shares
one step length among a window's frames, so short windows converge in fewer
iterations (measured: 50 -> 10 frames took the body from 20 to 5 mm on a model that
can follow the take exactly).

Batched over frames in torch; no Python loop per frame or joint.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from fitting import skeleton
from fitting.body_model.base import BodyModel
from fitting.body_model.rotations import axis_angle_to_matrix
from fitting.body_model.settings import FitSettings

TORSO = np.array([5, 6, 11, 12])  # shoulders and hips: the rigid core that places each frame


@dataclass(frozen=True)
class BodyFit:
    """A take's fit.

    ``shape (S,)`` (the model's fit parameterization, see the model); ``pose (F, J, 3)``
    axis-angle rad; ``rotation (F, 3)`` axis-angle and ``translation (F, 3)`` m: world =
    R model + t; ``joints (F, 59, 3)`` m, the model's 59 points (NaN: joints the model
    lacks); ``errors (F, 59)`` m, distance to the refined joints (NaN where either is
    missing); ``seconds``: time of the fit.
    """

    shape: np.ndarray
    pose: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    joints: np.ndarray
    errors: np.ndarray
    seconds: float


def joint_weights(confidence: np.ndarray, filled: np.ndarray, points: np.ndarray, filled_weight: float) -> np.ndarray:
    """Data weights ``(F, 59)`` from refine's quality: the confidence, ``filled_weight`` for
    gap-filled samples, 0 for missing ones."""
    weights = np.where(filled, filled_weight, np.clip(np.nan_to_num(confidence), 0.0, 1.0))
    return np.where(np.isfinite(points).all(-1), weights, 0.0)


def kabsch(source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted rigid alignment per frame: ``R (F, 3, 3)``, ``t (F, 3)`` with target ~ R source + t.

    ``source (N, 3)``, ``target (F, N, 3)`` (NaN allowed where the weight is 0), ``weights (F, N)``."""
    weights = weights / np.maximum(weights.sum(1, keepdims=True), 1e-12)
    target = np.nan_to_num(target)
    source_mean = np.einsum("fn,nd->fd", weights, source)
    target_mean = np.einsum("fn,fnd->fd", weights, target)
    covariance = np.einsum("fn,fni,fnj->fij", weights, target - target_mean[:, None], source[None] - source_mean[:, None])
    u, _, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(u @ vt))
    u[:, :, 2] *= sign[:, None]
    rotation = u @ vt
    return rotation, target_mean - np.einsum("fij,fj->fi", rotation, source_mean)


def _nearest_valid(valid: np.ndarray) -> np.ndarray:
    """For each frame, the index of the nearest frame where ``valid`` (all True when none is)."""
    frames = np.arange(valid.size)
    if not valid.any():
        return frames
    good = frames[valid]
    position = np.clip(np.searchsorted(good, frames), 1, max(good.size - 1, 1)) if good.size > 1 else np.zeros_like(frames)
    before, after = good[np.maximum(position - 1, 0)], good[position]
    return np.where(np.abs(frames - before) <= np.abs(after - frames), before, after)


HAND_WRISTS = np.array([skeleton.LEFT_HAND.start, skeleton.RIGHT_HAND.start])


@dataclass
class _Frames:
    """The per-frame unknowns of some frames: ``pose (F, J, 3)``, ``rotation (F, 3, 3)``, ``translation (F, 3)``."""

    pose: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor

    def select(self, index) -> _Frames:
        return _Frames(self.pose[index], self.rotation[index], self.translation[index])


class _Cost:
    """The fit's cost on a set of frames for one step (data on some joints, priors, smoothness)."""

    def __init__(self, model: BodyModel, targets, weights, sigma, settings: FitSettings, fps: float, temporal: bool):
        dtype = model.dtype
        self.model = model
        self.targets = torch.as_tensor(np.nan_to_num(targets), dtype=dtype)
        self.weights = torch.as_tensor(weights * model.mapped[None], dtype=dtype)
        self.inverse_sigma = torch.as_tensor(1.0 / sigma, dtype=dtype)[:, None]
        self.robust2 = settings.robust_scale**2
        pose_sigma = np.where(model.hand_pose, settings.hand_pose_sigma_rad, settings.body_pose_sigma_rad)
        self.inverse_pose_sigma = torch.as_tensor(1.0 / pose_sigma, dtype=dtype)[:, None]
        self.inverse_shape_sigma2 = 1.0 / settings.shape_sigma**2
        step = 1.0 / fps**2  # acceleration -> second difference per frame
        self.temporal = temporal
        self.inverse_acceleration = {
            "pose": 1.0 / (settings.pose_acceleration_sigma_rad_s2 * step),
            "rotation": 1.0 / (settings.rotation_acceleration_sigma_rad_s2 * step),
            "translation": 1.0 / (settings.translation_acceleration_sigma_m_s2 * step),
        }

    def __call__(self, shape, state, frames: _Frames, context: _Frames | None):
        """``state``: the model's shape state of ``shape``; ``context``: the two frames solved
        before these, fixed, that the smoothness terms reach into."""
        points = torch.einsum("fij,fpj->fpi", frames.rotation, self.model.posed_points(state, frames.pose)) + frames.translation[:, None]
        squared = (((points - self.targets) * self.inverse_sigma) ** 2).sum(-1)
        cost = (self.weights * self.robust2 * torch.log1p(squared / self.robust2)).sum()
        cost = cost + ((frames.pose * self.inverse_pose_sigma) ** 2).sum()
        cost = cost + self.inverse_shape_sigma2 * self.model.shape_penalty(shape)
        if self.temporal:
            for name in ("pose", "rotation", "translation"):
                values = getattr(frames, name)
                if context is not None:
                    values = torch.cat([getattr(context, name), values])
                if values.shape[0] >= 3:
                    second = values[2:] - 2.0 * values[1:-1] + values[:-2]
                    cost = cost + self.inverse_acceleration[name] ** 2 * (second**2).sum()
        return cost / self.targets.shape[0]


def _optimize(model: BodyModel, cost: _Cost, shape, frames: _Frames, free: np.ndarray, move_root: bool, fit_shape: bool, context, iterations: int):
    """L-BFGS on the ``free`` joints' rotations (and the global rotation and translation with
    ``move_root``, the shape with ``fit_shape``); returns the new (shape, frames)."""
    free_index = torch.as_tensor(np.flatnonzero(free))
    variables = {"pose": frames.pose[:, free_index].clone().requires_grad_(True)}
    if move_root:
        variables["rotation"] = torch.zeros(frames.rotation.shape[0], 3, dtype=model.dtype, requires_grad=True)
        variables["translation"] = frames.translation.clone().requires_grad_(True)
    if fit_shape:
        variables["shape"] = shape.clone().requires_grad_(True)
    else:
        with torch.no_grad():
            state = model.shape_state(shape)

    def current() -> tuple[torch.Tensor, _Frames]:
        pose = frames.pose.index_copy(1, free_index, variables["pose"])
        if not move_root:
            return shape, _Frames(pose, frames.rotation, frames.translation)
        return shape, _Frames(pose, axis_angle_to_matrix(variables["rotation"]) @ frames.rotation, variables["translation"])

    optimizer = torch.optim.LBFGS(
        list(variables.values()), lr=1.0, max_iter=iterations, history_size=20, line_search_fn="strong_wolfe",
        tolerance_grad=1e-9, tolerance_change=1e-12,
    )  # fmt: skip

    def closure():
        optimizer.zero_grad()
        _, posed = current()
        shape_now = variables.get("shape", shape)
        value = cost(shape_now, model.shape_state(shape_now) if fit_shape else state, posed, context)
        value.backward()
        return value

    optimizer.step(closure)
    with torch.no_grad():
        _, posed = current()
        return variables.get("shape", shape).detach(), _Frames(posed.pose.detach(), posed.rotation.detach(), posed.translation.detach())


@contextlib.contextmanager
def single_thread():
    """Run torch on one thread, then restore its setting: the fit's tensors are small and
    torch's threads cost more than they give (measured on 2 cores: 4x slower with 2)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fit_body_model(model: BodyModel, targets: np.ndarray, weights: np.ndarray, fps: float, settings: FitSettings) -> BodyFit:
    """Fit ``model`` to ``targets (F, 59, 3)`` m (NaN: missing) with data ``weights (F, 59)``
    (see :func:`joint_weights`) at ``fps`` frames per second (one torch thread)."""
    with single_thread():
        return _fit(model, targets, weights, fps, settings)


def _fit(model: BodyModel, targets: np.ndarray, weights: np.ndarray, fps: float, settings: FitSettings) -> BodyFit:
    start_time = time.perf_counter()
    targets = np.asarray(targets, dtype=np.float64)
    count = targets.shape[0]
    weights = np.where(np.isfinite(targets).all(-1), np.asarray(weights, dtype=np.float64), 0.0)
    dtype = model.dtype

    # Each step's data: the body (and the hand wrists, the same point) at the body's
    # sigma, then the hands at theirs with the body fixed.
    body_joints = np.zeros(skeleton.NUM_JOINTS, dtype=bool)
    body_joints[skeleton.BODY] = True
    body_joints[HAND_WRISTS] = True
    hand_joints = ~body_joints
    hand_joints[HAND_WRISTS] = True
    body_sigma = np.full(skeleton.NUM_JOINTS, settings.body_sigma_mm / 1000.0)
    hand_sigma = np.full(skeleton.NUM_JOINTS, settings.hand_sigma_mm / 1000.0)
    body_free, hand_free = ~model.hand_pose, model.hand_pose | model.wrist_pose

    # (1) Rigid placement of every frame from the torso.
    shape = model.initial_shape()
    with torch.no_grad():
        rest = model.points(shape, torch.zeros(1, len(model.pose_names), 3, dtype=dtype))[0].double().numpy()
    torso_weights = weights[:, TORSO]
    placed = (torso_weights > 0).sum(1) >= 3
    rotation0, translation0 = kabsch(rest[TORSO], targets[:, TORSO], torso_weights)
    nearest = _nearest_valid(placed)
    solved = _Frames(
        torch.zeros(count, len(model.pose_names), 3, dtype=dtype),
        torch.as_tensor(rotation0[nearest], dtype=dtype),
        torch.as_tensor(translation0[nearest], dtype=dtype),
    )

    # (2) Shape, with the body poses of frames spread over the take.
    chosen = np.flatnonzero(placed) if placed.any() else np.arange(count)
    chosen = chosen[np.unique(np.linspace(0, chosen.size - 1, min(settings.shape_frames, chosen.size)).round().astype(int))]
    cost = _Cost(model, targets[chosen], weights[chosen] * body_joints, body_sigma, settings, fps, temporal=False)
    shape, shaped = _optimize(model, cost, shape, solved.select(chosen), body_free, True, True, None, settings.shape_iterations)

    # (3) The take in windows, shape fixed: body, then hands; each window starts from the
    # pose of the frame solved before it.
    warm = shaped.pose[0]
    context = None
    for begin in range(0, count, settings.window_frames):
        window = slice(begin, min(begin + settings.window_frames, count))
        frames = solved.select(window)
        frames.pose = warm.expand_as(frames.pose).clone()
        body_cost = _Cost(model, targets[window], weights[window] * body_joints, body_sigma, settings, fps, temporal=True)
        _, frames = _optimize(model, body_cost, shape, frames, body_free, True, False, context, settings.window_iterations)
        hand_cost = _Cost(model, targets[window], weights[window] * hand_joints, hand_sigma, settings, fps, temporal=True)
        _, frames = _optimize(model, hand_cost, shape, frames, hand_free, False, False, context, settings.window_iterations)
        solved.pose[window], solved.rotation[window], solved.translation[window] = frames.pose, frames.rotation, frames.translation
        warm = solved.pose[window.stop - 1]
        context = solved.select(slice(window.stop - 2, window.stop)) if window.stop >= 2 else None

    with torch.no_grad():
        model_points = model.points(shape, solved.pose)
        fitted = (torch.einsum("fij,fpj->fpi", solved.rotation, model_points) + solved.translation[:, None]).double().numpy()
    fitted[:, ~model.mapped] = np.nan
    return BodyFit(
        shape=shape.double().numpy(),
        pose=solved.pose.double().numpy(),
        rotation=Rotation.from_matrix(solved.rotation.double().numpy()).as_rotvec(),
        translation=solved.translation.double().numpy(),
        joints=fitted,
        errors=np.linalg.norm(fitted - targets, axis=-1),
        seconds=time.perf_counter() - start_time,
    )
