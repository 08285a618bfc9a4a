"""Spatio-temporal least squares: smooth 3D joint tracks with one constant length per bone.

Unknowns: the 3D position of every estimated joint in every frame of a window, and one
length per bone, shared by all frames. Every residual is divided by its expected
standard deviation, so the cost is a sum of dimensionless squares:

- reprojection, per used observation (view, frame, joint): ``(pi_v(X) - u) / pixel_sigma_px``,
  weighted by the 2D confidence, robust loss (Huber or Cauchy, scale ``loss_scale_px``; IRLS);
- temporal smoothness, per joint and frame whose both neighbours are estimated:
  ``(X[t-1] - 2 X[t] + X[t+1]) * fps^2 / acceleration_sigma_m_s2`` (an acceleration);
- bone length, per bone and frame with both ends estimated:
  ``(|X[b] - X[a]| - L) / (bone_sigma_ratio * L_ref)``;
- prior on each length: ``(L - L_prior) / length_prior_sigma_m`` (the take-wide estimate of
  :mod:`fitting.bone_lengths`; optional per bone);
- left/right symmetry of lengths (optional): ``(L_i - L_j) / (symmetry_sigma_ratio * L_ref)``;
- position anchors (optional, e.g. the hand wrist held at the fitted body wrist):
  ``(X - A) / anchor_sigma_m``.

Solver: Levenberg-Marquardt (Nielsen's damping update) on the analytic Jacobian.
Variables are ordered frame by frame, so the normal matrix of the positions of one
*block* (joints that no bone links to another block: the body, one hand) is banded with
half-bandwidth ``6 * joints`` (the acceleration links frames t-1 and t+1). Its entries
are assembled directly in LAPACK's lower banded storage (:meth:`_Block.normal_equations`:
3x3 blocks per joint and bone, the constant acceleration and anchor part once per
window; the sparse Jacobian itself, :meth:`_Block.linearise`, is only the reference it is
tested against) and factored in place by LAPACK's banded Cholesky. The bone lengths
link all frames: they are eliminated exactly by a Schur complement (one small dense
system over all blocks, which also holds the prior and symmetry terms); its columns
are solved against the factor in one blocked pass (:func:`fitting.banded.solve_lower`).
The banded factorization and that solve are most of the time (about 18 MFlop per frame
over the fit's iterations on a 59-joint take). A Gauss-Newton step meets the bone residuals only to
first order (a sideways move of ``s`` lengthens a bone by ``s^2 / 2L``, a lot for a stiff
bone term), so each trial step gets a second-order correction that moves the two ends
of every bone along it back to its length before the step is judged.

Long takes are solved in overlapping windows: a first pass estimates the lengths on a
few windows spread over the take (``length_windows``), they are averaged (weighted by
the frames that see the bone), a second pass solves every window with those lengths
fixed, and the windows are blended linearly across their overlaps, so the whole take
shares one length per bone and each frame is solved about once.

Joints outside ``support`` are not unknowns and stay NaN: a joint never seen, or a hand
absent from the take, is absent from the result. No Python loop runs over frames or
joints; loops are over windows, blocks, views, bones and iterations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sparse
from scipy.linalg import lapack

from fitting.banded import solve_lower
from fitting.bone_lengths import median_bone_lengths
from fitting.reprojection import CameraLike, project, project_with_jacobian

_CORRECTION_SWEEPS = 5  # Gauss-Seidel sweeps of the second-order length correction (numerical, not a model weight)


@dataclass(frozen=True)
class BoneFit:
    """Result of :func:`fit_tracks`.

    - ``points (frames, joints, 3)`` metres, NaN outside the support and for joints in no block;
    - ``bone_lengths (bones,)`` metres, NaN for bones never estimated;
    - ``iterations``: the most Levenberg-Marquardt iterations a window needed;
    - ``converged``: every window met the tolerance within ``max_iterations``.
    """

    points: np.ndarray
    bone_lengths: np.ndarray
    iterations: int
    converged: bool


@dataclass(frozen=True)
class _Weights:
    pixel_sigma_px: float
    loss: str  # "huber" or "cauchy"
    loss_scale_px: float
    acceleration_sigma: np.ndarray  # (J,) m/s^2
    fps: float
    anchor_sigma_m: float


LOSSES = ("huber", "cauchy")


def _robust(norm: np.ndarray, loss: str, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Robust cost ``rho(e)`` (pixels^2, ``e^2`` near 0) and IRLS weight ``rho'(e) / 2e`` of pixel distances."""
    if loss == "huber":
        inside = norm <= scale
        return np.where(inside, norm**2, 2.0 * scale * norm - scale**2), np.where(inside, 1.0, scale / np.maximum(norm, 1e-12))
    ratio = (norm / scale) ** 2  # Cauchy: redescending, a view that disagrees by 3 scales weighs 1/10
    return scale**2 * np.log1p(ratio), 1.0 / (1.0 + ratio)


def _correction_levels(pairs: np.ndarray, both: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The bone-by-bone Gauss-Seidel order of :meth:`_Block.correct_lengths` as levels.

    A bone's level is one more than the highest level of the earlier bones that share a
    joint with it (0 if none): the bones of one level share no joint, and each bone sees
    exactly the updates of the earlier bones it shares a joint with, so sweeping level by
    level gives the bone-by-bone result bit for bit. ``pairs (B, 2)`` local joints,
    ``both (T, B)``: frames with both ends estimated. Per level: frames ``t``, first and
    second joints ``a``, ``c`` and local bone of each of its (frame, bone) rows.
    """
    level = np.zeros(pairs.shape[0], dtype=np.int64)
    for b in range(pairs.shape[0]):  # loop over bones (tens)
        earlier = np.isin(pairs[:b], pairs[b]).any(axis=1)
        level[b] = level[:b][earlier].max() + 1 if earlier.any() else 0
    result = []
    for value in np.unique(level):  # loop over levels
        members = np.flatnonzero(level == value)
        t, column = np.nonzero(both[:, members])
        local = members[column]
        result.append((t, pairs[local, 0], pairs[local, 1], local))
    return result


_UPPER_I = np.array([0, 0, 1, 0, 1, 2])  # the upper entries (i <= j) of a 3x3 block: rows...
_UPPER_J = np.array([0, 1, 1, 2, 2, 2])  # ...and columns


class _Block:
    """Residual structure of one block of joints over one window of frames.

    The block's unknown positions ``x`` are ``(T, nj, 3)``; position ``(t, k, c)`` is
    variable ``(t * nj + k) * 3 + c``. ``bone_ids``: the fit-wide index of each local bone;
    ``bone_scale``: ``1 / sigma`` of each local bone (NaN: no length residual).
    """

    def __init__(self, joints, support, observations, use, bones, bone_ids, bone_scale, anchors, weights: _Weights):
        self.joints = np.asarray(joints, dtype=np.int64)
        self.support = support
        T, nj = support.shape
        self.shape = (T, nj, 3)
        self.size = T * nj * 3
        self.bandwidth = 6 * nj  # |(t+1, k, c) - (t-1, k, c)| in variable indices
        self.weights = weights
        # Observations (view, t, k) with pixels and confidence.
        view, t, k = np.nonzero(use & support[None])
        self.obs_view, self.obs_t, self.obs_k = view, t, k
        self.obs_xy = observations[view, t, k, :2]
        self.obs_conf = observations[view, t, k, 2]
        # Acceleration rows: centre frames whose both neighbours are estimated.
        t, k = np.nonzero(support[1:-1] & support[:-2] & support[2:])
        self.acc_t, self.acc_k = t + 1, k
        self.acc_scale = weights.fps**2 / weights.acceleration_sigma[self.joints[k]]
        # Bone rows (t, local bone) with both ends estimated.
        pairs = np.asarray(bones, dtype=np.int64).reshape(-1, 2)
        self.pairs = pairs
        self.pair_ids = np.asarray(bone_ids, dtype=np.int64)
        self.pair_active = np.isfinite(bone_scale)
        both = support[:, pairs[:, 0]] & support[:, pairs[:, 1]] & self.pair_active[None]
        self.both = both
        t, b = np.nonzero(both)
        self.bone_t, self.bone_a, self.bone_b = t, pairs[b, 0], pairs[b, 1]
        self.bone_id = self.pair_ids[b]
        self.bone_scale = np.asarray(bone_scale, dtype=np.float64)[b]
        self.bone_local = b
        self.seen = np.bincount(b, minlength=pairs.shape[0])  # frames per local bone
        if len({tuple(sorted(pair)) for pair in pairs.tolist()}) != pairs.shape[0] or np.any(pairs[:, 0] == pairs[:, 1]):
            raise ValueError("bones must be distinct pairs of distinct joints")
        # Anchors.
        if anchors is None:
            anchors = np.full(support.shape + (3,), np.nan)
        t, k = np.nonzero(np.isfinite(anchors).all(-1) & support)
        self.anc_t, self.anc_k, self.anc_xyz = t, k, anchors[t, k]
        # Observations are in view order (np.nonzero): each view's are one slice.
        bounds = np.searchsorted(view, np.arange(len(observations) + 1))
        self.view_slices = [slice(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]
        self.levels = [(t * nj + a, t * nj + c, local) for t, a, c, local in _correction_levels(pairs, both)]  # flat samples
        # Flat indices the normal equations are assembled with (samples: t * nj + k).
        self.obs_sample = self.obs_t * nj + self.obs_k
        self.bone_sa, self.bone_sb = self.bone_t * nj + self.bone_a, self.bone_t * nj + self.bone_b
        self.acc_sample = self.acc_t * nj + self.acc_k
        self.anc_sample = self.anc_t * nj + self.anc_k
        owner = np.concatenate([self.obs_sample, self.bone_sa, self.bone_sb])  # the sample of each row's 3x3 block
        # Bins of one bincount over k entries per sample, entry-major: entry e of sample s in bin e * samples + s.
        self.owner6 = (np.arange(6)[:, None] * (T * nj) + owner).ravel()
        self.owner3 = (np.arange(3)[:, None] * (T * nj) + owner).ravel()
        # Lower banded storage, Fortran order: N[i, j] (i >= j) at ab[i - j, j], flat i + kd * j.
        kd = self.bandwidth
        self.diagonal_position = 3 * np.arange(T * nj) + _UPPER_J[:, None] + kd * (3 * np.arange(T * nj) + _UPPER_I[:, None])  # (6, samples)
        low, high = 3 * np.minimum(self.bone_sa, self.bone_sb), 3 * np.maximum(self.bone_sa, self.bone_sb)
        i, j = np.divmod(np.arange(9), 3)
        self.cross_position = high + j[:, None] + kd * (low + i[:, None])  # (9, bone rows): entry (low + i, high + j) = (3 i + j) of the block

    def _index(self, t, k):
        return (t * self.shape[1] + k) * 3

    def correct_lengths(self, x: np.ndarray, lengths: np.ndarray, before: np.ndarray | None = None) -> np.ndarray:
        """Second-order correction of bone lengths, vectorised over frames.

        Both ends of every bone move along it, half each, until its length is the target:
        with ``before`` (the positions before a Gauss-Newton step), the length the step's
        linearisation predicted, ``|d| + u . (d' - d)``, which removes only the error of
        the linearisation (a sideways move of ``s`` lengthens a bone by ``s^2 / 2L``);
        without it, ``lengths`` (start values that meet the constraints). Gauss-Seidel
        sweeps over the bones in their order, run level by level (:func:`_correction_levels`:
        the bones of a level share no joint, so this is the bone-by-bone sweep, bit for bit).
        """
        x = x.copy()
        flat, flat_before = x.reshape(-1, 3), None if before is None else before.reshape(-1, 3)
        targets = []
        for a, c, local in self.levels:  # loop over levels (a few per block)
            if before is None:
                targets.append(lengths[self.pair_ids[local]])
            else:
                d_old = flat_before[c] - flat_before[a]
                norm_old = np.maximum(np.sqrt((d_old**2).sum(-1)), 1e-9)
                moved = (flat[c] - flat[a]) - d_old
                targets.append(norm_old + (d_old * moved).sum(-1) / norm_old)
        both_ends = [np.concatenate([a, c]) for a, c, _ in self.levels]  # no sample twice within a level
        half_target = [0.5 * target for target in targets]
        for _ in range(_CORRECTION_SWEEPS):
            for ends, half in zip(both_ends, half_target):  # loop over levels
                ends_xyz = flat[ends]
                count = ends.size // 2
                d = ends_xyz[count:] - ends_xyz[:count]
                norm = np.maximum(np.sqrt((d**2).sum(-1)), 1e-9)
                shift = ((0.5 * norm - half) / norm)[:, None] * d
                flat[ends] = ends_xyz + np.concatenate([shift, -shift])
        return x

    def reprojection(self, cameras, x, with_jacobian: bool):
        """Pixel residuals ``(n, 2)`` of the block's observations at ``x`` (1e4 behind a camera)
        and, ``with_jacobian``, d pixel / d point ``(n, 2, 3)`` (else None)."""
        points = x.reshape(-1, 3)[self.obs_sample]
        pixels = np.empty((points.shape[0], 2))
        jacobian = np.empty((points.shape[0], 2, 3)) if with_jacobian else None
        for camera, rows in zip(cameras, self.view_slices):  # loop over views
            if rows.stop > rows.start:
                if with_jacobian:
                    pixels[rows], jacobian[rows] = project_with_jacobian(camera, points[rows])
                else:
                    pixels[rows] = project([camera], points[rows])[0]
        delta = pixels - self.obs_xy
        return np.where(np.isfinite(delta), delta, 1e4), jacobian  # behind a camera: a large residual

    def cost(self, cameras, x, lengths, reprojection=None) -> float:
        """Robust cost of the block (sum of squared whitened residuals, robust loss on pixels);
        ``reprojection``: :meth:`reprojection` at ``x`` when known."""
        w = self.weights
        flat = x.reshape(-1, 3)
        delta, _ = self.reprojection(cameras, x, False) if reprojection is None else reprojection
        rho, _ = _robust(np.sqrt((delta**2).sum(-1)), w.loss, w.loss_scale_px)
        acc = (flat[self.acc_sample - self.shape[1]] - 2.0 * flat[self.acc_sample] + flat[self.acc_sample + self.shape[1]]) * self.acc_scale[:, None]
        dist = np.sqrt(((flat[self.bone_sb] - flat[self.bone_sa]) ** 2).sum(-1))
        bone = (dist - lengths[self.bone_id]) * self.bone_scale
        anchor = (flat[self.anc_sample] - self.anc_xyz) / w.anchor_sigma_m
        return float((self.obs_conf * rho).sum() / w.pixel_sigma_px**2 + (acc**2).sum() + (bone**2).sum() + (anchor**2).sum())

    def constant_normal(self) -> np.ndarray:
        """The part of the positions' normal matrix that does not depend on ``x`` (the linear
        acceleration and anchor rows): ``(3, size)``, the band's diagonal and its
        subdiagonals at one and two frames (lower banded storage: ``ab[f * 3 nj, j]``
        holds ``N[j + f * 3 nj, j]``)."""
        stride = 3 * self.shape[1]
        rows = np.zeros((3, self.size))
        centre = (self._index(self.acc_t, self.acc_k)[:, None] + np.arange(3)).ravel()
        weight = np.repeat(self.acc_scale**2, 3)
        # The stencil (1, -2, 1) over frames t-1, t, t+1: its outer product, lower part
        # (entry (t + j, t + i), j >= i, of frame offset j - i is stored in the column of t + i).
        for (i, j), value in {(-1, -1): 1.0, (0, 0): 4.0, (1, 1): 1.0, (-1, 0): -2.0, (0, 1): -2.0, (-1, 1): 1.0}.items():
            np.add.at(rows[j - i], centre + i * stride, value * weight)
        anchored = (self._index(self.anc_t, self.anc_k)[:, None] + np.arange(3)).ravel()
        np.add.at(rows[0], anchored, 1.0 / self.weights.anchor_sigma_m**2)
        return rows

    def normal_equations(self, cameras, x, lengths, free_local, constant, ab, rhs, reprojection=None):
        """Gauss-Newton normal equations of the block at ``x`` (IRLS weights of the robust loss),
        assembled directly (the products :meth:`linearise`'s Jacobian would give).

        ``free_local``: the local bones whose lengths are unknowns, in the order of the
        length columns; ``constant``: :meth:`constant_normal`. Fills ``ab (bandwidth + 1,
        size)`` with ``J_x^T J_x`` in lower banded storage (LAPACK's layout, ``ab[i - j, j]
        = N[i, j]``; Fortran order for LAPACK to work in place) and ``rhs (size, 1 + len(free_local))`` (Fortran
        order): column 0 ``J_x^T r``, the others ``J_x^T J_l``. Returns the diagonal of
        ``J_l^T J_l`` and ``J_l^T r`` over the free lengths. ``reprojection``:
        :meth:`reprojection` at ``x`` with the Jacobian, when known.
        """
        w = self.weights
        T, nj, _ = self.shape
        stride, samples = 3 * nj, T * nj
        flat_x = x.reshape(-1, 3)
        delta, jac = self.reprojection(cameras, x, True) if reprojection is None else reprojection
        _, robust = _robust(np.sqrt((delta**2).sum(-1)), w.loss, w.loss_scale_px)
        sqrt_w = np.sqrt(self.obs_conf * robust) / w.pixel_sigma_px
        # Whitened reprojection rows, one array per component (n,): jw[r][c] = d pixel_r / d x_c.
        jw = [[jac[:, r, c] * sqrt_w for c in range(3)] for r in range(2)]
        rw = [delta[:, r] * sqrt_w for r in range(2)]
        # Bone rows: r = (|d| - L) s, d r / d x_b = s u = -d r / d x_a, d r / d L = -s.
        d = flat_x[self.bone_sb] - flat_x[self.bone_sa]
        dist = np.sqrt((d**2).sum(-1))
        unit = d / np.maximum(dist, 1e-9)[:, None] * self.bone_scale[:, None]
        u = [unit[:, c] for c in range(3)]
        bone_r = (dist - lengths[self.bone_id]) * self.bone_scale
        ab[...] = 0.0
        ab[stride], ab[2 * stride] = constant[1], constant[2]
        flat = ab.reshape(-1, order="F")  # a view: ab is Fortran-ordered
        # Diagonal 3x3 blocks per sample (t, k), their 6 upper entries summed in one pass:
        # reprojection rows and both ends of every bone row.
        weights = []
        for i, j in zip(_UPPER_I, _UPPER_J):  # loop over the 6 upper entries of a 3x3 block
            bone = u[i] * u[j]
            weights += [jw[0][i] * jw[0][j] + jw[1][i] * jw[1][j], bone, bone]
            # Off-diagonal blocks (t, a)-(t, b) of each bone row: -s^2 u u^T (symmetric; bones are distinct pairs).
            flat[self.cross_position[3 * i + j]] = -bone
            if i != j:
                flat[self.cross_position[3 * j + i]] = -bone
        entries = np.bincount(self.owner6, np.concatenate(weights), minlength=6 * samples).reshape(6, samples)
        entries[[0, 2, 5]] += constant[0].reshape(samples, 3).T  # the diagonal entries (0, 0), (1, 1), (2, 2)
        flat[self.diagonal_position] = entries
        # Gradient J_x^T r.
        weights = []
        for c in range(3):
            bone = u[c] * bone_r
            weights += [jw[0][c] * rw[0] + jw[1][c] * rw[1], -bone, bone]
        gradient = np.bincount(self.owner3, np.concatenate(weights), minlength=3 * samples).reshape(3, samples).T.copy()
        acc = (flat_x[self.acc_sample - nj] - 2.0 * flat_x[self.acc_sample] + flat_x[self.acc_sample + nj]) * self.acc_scale[:, None] ** 2
        gradient[self.acc_sample - nj] += acc
        gradient[self.acc_sample] -= 2.0 * acc
        gradient[self.acc_sample + nj] += acc
        gradient[self.anc_sample] += (flat_x[self.anc_sample] - self.anc_xyz) / w.anchor_sigma_m**2
        rhs[:, 0] = gradient.reshape(-1)
        # Length columns J_x^T J_l and the lengths' own terms.
        column = np.full(self.pairs.shape[0], -1)
        column[free_local] = np.arange(len(free_local))
        rows = np.flatnonzero(column[self.bone_local] >= 0)
        col = column[self.bone_local[rows]]
        rhs[:, 1:] = 0.0
        coupling = unit[rows] * self.bone_scale[rows, None]
        for c in range(3):
            rhs[3 * self.bone_sa[rows] + c, 1 + col] = coupling[:, c]
            rhs[3 * self.bone_sb[rows] + c, 1 + col] = -coupling[:, c]
        n_free = len(free_local)
        return (
            np.bincount(col, self.bone_scale[rows] ** 2, minlength=n_free),
            np.bincount(col, -self.bone_scale[rows] * bone_r[rows], minlength=n_free),
        )

    def linearise(self, cameras, x, lengths):
        """Whitened residuals ``r`` and sparse Jacobians ``J_x (rows, size)``, ``J_l (rows, B)``
        at ``x``, with the robust loss as IRLS weights: the definition that
        :meth:`normal_equations` assembles the products of (the solver never forms them)."""
        w = self.weights
        delta, jac = self.reprojection(cameras, x, True)
        _, robust = _robust(np.sqrt((delta**2).sum(-1)), w.loss, w.loss_scale_px)
        sqrt_w = np.sqrt(self.obs_conf * robust) / w.pixel_sigma_px
        n_obs = self.obs_t.size
        rows = [np.repeat(np.arange(2 * n_obs), 3)]
        cols = [np.repeat((self._index(self.obs_t, self.obs_k)[:, None] + np.arange(3))[:, None, :], 2, axis=1).ravel()]
        vals = [(jac * sqrt_w[:, None, None]).ravel()]
        residuals = [(delta * sqrt_w[:, None]).ravel()]
        offset = 2 * n_obs

        n_acc = self.acc_t.size
        centre = self._index(self.acc_t, self.acc_k)[:, None] + np.arange(3)  # (n, 3)
        stride = self.shape[1] * 3
        rows.append(np.repeat(offset + np.arange(3 * n_acc), 3))
        cols.append(np.stack([centre - stride, centre, centre + stride], axis=-1).ravel())
        vals.append((np.array([1.0, -2.0, 1.0]) * self.acc_scale[:, None, None] * np.ones((1, 3, 1))).ravel())
        acc = (x[self.acc_t - 1, self.acc_k] - 2.0 * x[self.acc_t, self.acc_k] + x[self.acc_t + 1, self.acc_k]) * self.acc_scale[:, None]
        residuals.append(acc.ravel())
        offset += 3 * n_acc

        n_bone = self.bone_t.size
        d = x[self.bone_t, self.bone_b] - x[self.bone_t, self.bone_a]
        dist = np.sqrt((d**2).sum(-1))
        unit = d / np.maximum(dist, 1e-9)[:, None] * self.bone_scale[:, None]
        bone_rows = offset + np.arange(n_bone)
        rows.append(np.repeat(bone_rows, 6))
        cols.append(
            np.concatenate(
                [self._index(self.bone_t, self.bone_a)[:, None] + np.arange(3), self._index(self.bone_t, self.bone_b)[:, None] + np.arange(3)],
                axis=1,
            ).ravel()
        )
        vals.append(np.concatenate([-unit, unit], axis=1).ravel())
        residuals.append((dist - lengths[self.bone_id]) * self.bone_scale)
        offset += n_bone

        n_anchor = self.anc_t.size
        rows.append(offset + np.arange(3 * n_anchor))
        cols.append((self._index(self.anc_t, self.anc_k)[:, None] + np.arange(3)).ravel())
        vals.append(np.full(3 * n_anchor, 1.0 / w.anchor_sigma_m))
        residuals.append(((x[self.anc_t, self.anc_k] - self.anc_xyz) / w.anchor_sigma_m).ravel())
        offset += 3 * n_anchor

        J_x = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(offset, self.size))
        J_l = sparse.csr_matrix((-self.bone_scale, (bone_rows, self.bone_id)), shape=(offset, lengths.size))
        return np.concatenate(residuals), J_x, J_l


@dataclass(frozen=True)
class _LengthTerms:
    """Prior and symmetry residuals on the bone lengths: ``r = A @ L - b`` (dense, few rows)."""

    A: np.ndarray  # (rows, B)
    b: np.ndarray  # (rows,)

    def residuals(self, lengths):
        return self.A @ np.nan_to_num(lengths) - self.b


def _length_terms(free, prior, prior_sigma, symmetric, reference, symmetry_sigma_ratio) -> _LengthTerms:
    B = free.size
    rows_A, rows_b = [], []
    has_prior = free & np.isfinite(prior) & np.isfinite(prior_sigma)
    for b in np.flatnonzero(has_prior):  # loop over bones
        row = np.zeros(B)
        row[b] = 1.0 / prior_sigma[b]
        rows_A.append(row)
        rows_b.append(prior[b] / prior_sigma[b])
    if symmetry_sigma_ratio is not None:
        for i, j in np.asarray(symmetric, dtype=np.int64).reshape(-1, 2):  # loop over bone pairs
            if free[i] and free[j] and np.isfinite(reference[i]) and np.isfinite(reference[j]):
                row = np.zeros(B)
                scale = 1.0 / (symmetry_sigma_ratio * 0.5 * (reference[i] + reference[j]))
                row[i], row[j] = scale, -scale
                rows_A.append(row)
                rows_b.append(0.0)
    return _LengthTerms(np.array(rows_A).reshape(-1, B), np.array(rows_b))


class _FactorizationError(np.linalg.LinAlgError):
    """The banded Cholesky factorization failed (the damped normal matrix is not positive definite in its precision)."""


def _solve_window(cameras, blocks, x, lengths, free, terms: _LengthTerms, max_iterations, tolerance, factor_dtype="float32"):
    """Levenberg-Marquardt on one window: ``x`` list of ``(T, nj, 3)`` per block, ``lengths (B,)``,
    ``free (B,)``: lengths that are unknowns. Returns (x, lengths, iterations, converged).

    ``factor_dtype``: the precision of the banded factorization and its solves (the
    residuals, gradients, the lengths' Schur complement and the cost that accepts a step
    stay float64). float32 halves the bytes and doubles the flops per cycle of the
    dominant cost; an inexact step only changes the path to the minimum, not the minimum
    (the gradient is float64, and a step is kept only when the float64 cost falls). A
    float32 factorization that fails (rounding made the matrix indefinite) switches the
    window to float64 rather than raising the damping.
    """
    free_index = np.flatnonzero(free)
    position = np.full(free.size, -1)
    position[free_index] = np.arange(free_index.size)
    A_free = terms.A[:, free_index]

    def total_cost(xs, ls, reprojections):
        return sum(block.cost(cameras, xb, ls, p) for block, xb, p in zip(blocks, xs, reprojections)) + float((terms.residuals(ls) ** 2).sum())

    x = [block.correct_lengths(xb, lengths) for block, xb in zip(blocks, x)]
    # Pixel residuals and Jacobians at x: a trial step's are computed with its cost and,
    # when the step is taken, linearise the next iteration.
    reprojections = [block.reprojection(cameras, xb, True) for block, xb in zip(blocks, x)]
    cost = total_cost(x, lengths, reprojections)
    damping, growth = 1e-3, 2.0
    converged, iterations = False, 0
    # Per block, allocated once per window (large fresh arrays cost page faults): the
    # normal matrix, factored in place, and the right-hand sides.
    columns = [np.flatnonzero(free[block.pair_ids]) for block in blocks]  # local bones with free lengths
    slots = [position[block.pair_ids[own]] for block, own in zip(blocks, columns)]
    constants = [block.constant_normal() for block in blocks]
    dtype = np.dtype(factor_dtype)

    def allocate():
        return (
            [np.empty((block.bandwidth + 1, block.size), dtype=dtype, order="F") for block in blocks],
            [np.empty((block.size, 1 + own.size), dtype=dtype, order="F") for block, own in zip(blocks, columns)],
        )

    bands, rights = allocate()
    factor, back_solve = (lapack.spbtrf, lapack.stbtrs) if dtype == np.float32 else (lapack.dpbtrf, lapack.dtbtrs)

    def assemble():
        """Normal equations of every block at ``x`` into ``bands`` and ``rights``; the lengths' part."""
        N_ll = A_free.T @ A_free
        g_l = A_free.T @ terms.residuals(lengths)
        for block, xb, own, slot, constant, ab, rhs, pixels in zip(blocks, x, columns, slots, constants, bands, rights, reprojections):
            length_diagonal, length_gradient = block.normal_equations(cameras, xb, lengths, own, constant, ab, rhs, pixels)
            N_ll[slot, slot] += length_diagonal  # J_l^T J_l is diagonal: one length per bone row
            g_l[slot] += length_gradient
        return N_ll, g_l, [ab[0].copy() for ab in bands], [rhs[:, 0].copy() for rhs in rights]

    for iterations in range(1, max_iterations + 1):  # noqa: B007 - the count is returned
        N_ll, g_l, diagonals, gradients = assemble()
        step_found, assembled = False, True
        for _ in range(10):  # raise the damping until a step lowers the cost
            if not assembled:  # the last try factored the bands in place (the same x: the same terms, in the current precision)
                N_ll, g_l, diagonals, gradients = assemble()
            assembled = False
            schur, rhs_l = N_ll.copy(), g_l.copy()
            schur[np.diag_indices_from(schur)] *= 1.0 + damping
            solves = []
            try:
                for ab, rhs, slot, diagonal in zip(bands, rights, slots, diagonals):
                    ab[0] = np.where(diagonal > 0, diagonal * (1.0 + damping), 1.0)  # 1: variables with no residual
                    # N = L L^T (lower storage: LAPACK factors it ~30 % faster than upper here);
                    # with Z = L^-1 [g_x, N_xl] the Schur complement is N_ll - Z_l^T Z_l.
                    L, info = factor(ab, lower=1, overwrite_ab=1)
                    if info != 0:
                        raise _FactorizationError(f"banded Cholesky info {info}")
                    Z = solve_lower(L, rhs, out=rhs).astype(np.float64, copy=False)  # in place: a retry assembles again
                    products = Z.T @ Z  # [z_g, Z_l]^T [z_g, Z_l]: one product for both updates
                    schur[np.ix_(slot, slot)] -= products[1:, 1:]
                    rhs_l[slot] -= products[1:, 0]
                    solves.append((L, Z, slot))
                step_l = -np.linalg.solve(schur, rhs_l) if free_index.size else np.zeros(0)
                steps = []
                for L, Z, slot in solves:  # x step = -L^-T (z_g + Z_l step_l)
                    step, info = back_solve(L, (Z[:, 0] + Z[:, 1:] @ step_l[slot]).astype(dtype), uplo="L", trans="T")
                    if info != 0:
                        raise np.linalg.LinAlgError(f"banded triangular solve info {info}")
                    steps.append(-step.astype(np.float64))
            except _FactorizationError:
                if dtype == np.float32:  # rounding, not the damping: the same try in float64
                    dtype = np.dtype(np.float64)
                    bands, rights = allocate()
                    factor, back_solve = lapack.dpbtrf, lapack.dtbtrs
                else:
                    damping, growth = damping * growth, growth * 2.0
                continue
            except (np.linalg.LinAlgError, ValueError):
                damping, growth = damping * growth, growth * 2.0
                continue
            trial_lengths = lengths.copy()
            trial_lengths[free_index] += step_l
            trial_x = [block.correct_lengths(xb + step.reshape(xb.shape), trial_lengths, xb) for block, xb, step in zip(blocks, x, steps)]
            trial_reprojections = [block.reprojection(cameras, xb, True) for block, xb in zip(blocks, trial_x)]
            trial_cost = total_cost(trial_x, trial_lengths, trial_reprojections)
            # Predicted decrease of the damped Gauss-Newton model: -g.s + damping * s.D.s (cost = sum r^2).
            predicted = -(g_l @ step_l) + damping * (np.diag(N_ll) * step_l**2).sum()
            for g_x, step, diagonal in zip(gradients, steps, diagonals):
                predicted += -(g_x @ step) + damping * (diagonal * step**2).sum()
            if np.isfinite(trial_cost) and trial_cost < cost:
                gain = (cost - trial_cost) / max(predicted, 1e-300)
                damping = max(damping * max(1.0 / 3.0, 1.0 - (2.0 * min(gain, 1.0) - 1.0) ** 3), 1e-9)
                growth = 2.0
                step_found = True
                break
            damping, growth = damping * growth, growth * 2.0
        if not step_found:
            converged = True  # no step lowers the cost any more: at a minimum to machine precision
            break
        decrease = (cost - trial_cost) / max(cost, 1e-300)
        x, lengths, cost, reprojections = trial_x, trial_lengths, trial_cost, trial_reprojections
        if decrease < tolerance:
            converged = True
            break
    return x, lengths, iterations, converged


@dataclass
class _WindowProblem:
    """One window's unknowns and residuals, everything :func:`_solve_window` needs."""

    cameras: tuple
    blocks: list
    xs: list
    lengths: np.ndarray
    free: np.ndarray
    terms: _LengthTerms
    max_iterations: int
    tolerance: float
    factor_dtype: str = "float32"


def solve_window_item(item: tuple) -> tuple:
    """``(meta, problem)`` -> ``(meta, (xs, lengths, iterations, converged))``: one window
    solved (a module-level function, so a parallel map can ship it)."""
    meta, problem = item
    return meta, _solve_window(
        problem.cameras,
        problem.blocks,
        problem.xs,
        problem.lengths,
        problem.free,
        problem.terms,
        problem.max_iterations,
        problem.tolerance,
        problem.factor_dtype,
    )


def _windows(frames: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """The fewest windows ``[start, stop)`` of at most ``chunk`` frames that cover the take
    with overlaps of at least ``overlap``, all of one length and evenly spread."""
    if frames <= chunk:
        return [(0, frames)]
    count = int(np.ceil((frames - overlap) / (chunk - overlap)))
    length = min(chunk, int(np.ceil((frames + (count - 1) * overlap) / count)))
    starts = np.round(np.linspace(0, frames - length, count)).astype(int)
    return [(int(start), int(start) + length) for start in starts]


def _blend_weights(start: int, stop: int, frames: int, overlap: int) -> np.ndarray:
    """Linear ramps over ``overlap`` frames at the window ends inside the take."""
    t = np.arange(start, stop)
    ramp = np.ones(stop - start)
    if start > 0:
        ramp = np.minimum(ramp, (t - start + 1) / (overlap + 1))
    if stop < frames:
        ramp = np.minimum(ramp, (stop - t) / (overlap + 1))
    return ramp


def fit_tracks(
    cameras: Sequence[CameraLike],
    observations: np.ndarray,
    use: np.ndarray,
    initial: np.ndarray,
    support: np.ndarray,
    *,
    fps: float,
    blocks: Sequence[Sequence[int]],
    bones: Sequence[tuple[int, int]],
    pixel_sigma_px: float,
    loss: str,
    loss_scale_px: float,
    acceleration_sigma_m_s2,
    bone_sigma_ratio: float,
    length_prior: np.ndarray | None = None,
    length_prior_sigma_m=None,
    symmetric_bones: Sequence[tuple[int, int]] = (),
    symmetry_sigma_ratio: float | None = None,
    anchors: np.ndarray | None = None,
    anchor_sigma_m: float = 0.01,
    max_iterations: int = 15,
    tolerance: float = 1e-3,
    factor_dtype: str = "float32",
    chunk_frames: int = 300,
    overlap_frames: int = 30,
    length_windows: int = 4,
    map_windows=None,
) -> BoneFit:
    """Fit smooth tracks with one constant length per bone to multi-view observations.

    Inputs (``V`` views, ``F`` frames, ``J`` joints, ``B`` bones):

    - ``cameras``: ``V`` calibrated cameras (see :mod:`fitting.reprojection`);
    - ``observations (V, F, J, 3)``: x, y in pixels and a confidence in [0, 1];
      ``use (V, F, J)`` bool: the observations the fit may use (NaN ones are dropped);
    - ``initial (F, J, 3)`` metres: start values, finite wherever ``support``;
    - ``support (F, J)`` bool: the positions to estimate (all others stay NaN);
    - ``blocks``: disjoint lists of joint indices, each one banded system (no bone may
      join two blocks; joints in no block are not estimated);
    - ``bones (B, 2)``: joint pairs of constant length; ``symmetric_bones``: pairs of
      indices into ``bones`` (left/right twins);
    - ``length_prior (B,)`` metres (NaN: none) with ``length_prior_sigma_m`` (scalar or
      ``(B,)``, metres): a prior on each length, also its start value;
    - ``anchors (F, J, 3)`` metres or None: target positions (NaN: none).

    Standard deviations of the residuals: ``pixel_sigma_px`` (pixels; ``loss`` is the robust
    loss of the reprojection residuals, ``huber`` or ``cauchy``, with scale ``loss_scale_px``
    in pixels), ``acceleration_sigma_m_s2`` (scalar or ``(J,)``, m/s^2),
    ``bone_sigma_ratio`` (of the bone's length), ``symmetry_sigma_ratio`` (of the length;
    None: no symmetry prior), ``anchor_sigma_m`` (metres). Solver: at most
    ``max_iterations`` Levenberg-Marquardt iterations per window, stop when the cost falls
    by less than ``tolerance`` (ratio) in one; the banded factorization in ``factor_dtype``
    (``float32`` or ``float64``, see :func:`_solve_window`); windows of ``chunk_frames`` frames
    overlapping by ``overlap_frames``. A long take's lengths are estimated on at most
    ``length_windows`` windows spread evenly over it (constants need no more frames),
    then every window is solved once with them fixed: the cost per frame stays near a
    short take's.

    ``map_windows(function, items)``: how the windows of a pass are solved, like the
    builtin :func:`map` (the default: one after another); a parallel map (Ray tasks,
    processes) may be given. It must return the results in the order of ``items``; the
    items and results are picklable (arrays and dataclasses).
    """
    observations = np.asarray(observations, dtype=np.float64)
    initial = np.asarray(initial, dtype=np.float64)
    support = np.asarray(support, dtype=bool) & np.isfinite(initial).all(-1)
    frames, num_joints = support.shape
    if observations.shape[1:3] != (frames, num_joints) or np.shape(use) != observations.shape[:3]:
        raise ValueError(f"observations {observations.shape}, use {np.shape(use)} and support {support.shape} disagree")
    if len(cameras) != observations.shape[0]:
        raise ValueError(f"{len(cameras)} cameras for {observations.shape[0]} views")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r} (known: {', '.join(LOSSES)})")
    if not 0 <= overlap_frames < chunk_frames:
        raise ValueError(f"overlap_frames ({overlap_frames}) must be in [0, chunk_frames = {chunk_frames})")
    use = np.asarray(use, dtype=bool) & np.isfinite(observations[..., :3]).all(-1)
    bones_array = np.asarray(bones, dtype=np.int64).reshape(-1, 2)
    num_bones = bones_array.shape[0]
    block_of = np.full(num_joints, -1)
    local_of = np.full(num_joints, -1)
    for index, block in enumerate(blocks):  # loop over blocks
        block = np.asarray(block, dtype=np.int64)
        if np.any(block_of[block] >= 0):
            raise ValueError("blocks must be disjoint")
        block_of[block], local_of[block] = index, np.arange(block.size)
    if num_bones and np.any((block_of[bones_array[:, 0]] != block_of[bones_array[:, 1]]) | (block_of[bones_array[:, 0]] < 0)):
        raise ValueError("every bone must join two joints of the same block")
    weights = _Weights(
        pixel_sigma_px=float(pixel_sigma_px),
        loss=loss,
        loss_scale_px=float(loss_scale_px),
        acceleration_sigma=np.broadcast_to(np.asarray(acceleration_sigma_m_s2, dtype=np.float64), (num_joints,)),
        fps=float(fps),
        anchor_sigma_m=float(anchor_sigma_m),
    )
    prior = np.full(num_bones, np.nan) if length_prior is None else np.asarray(length_prior, dtype=np.float64)
    prior_sigma = np.broadcast_to(np.asarray(np.nan if length_prior_sigma_m is None else length_prior_sigma_m, dtype=np.float64), (num_bones,))
    reference = median_bone_lengths(np.where(support[..., None], initial, np.nan), bones_array)
    reference = np.where(np.isfinite(prior) & np.isfinite(reference), prior, reference)  # NaN: never both ends
    estimated = np.isfinite(reference)
    bone_scale = np.where(estimated, 1.0 / (bone_sigma_ratio * np.where(estimated, reference, 1.0)), np.nan)
    anchors = None if anchors is None else np.asarray(anchors, dtype=np.float64)

    def window_items(jobs, x_start, lengths, free):
        """``((start, stop, joints per block, seen), problem)`` of each window with something to solve."""
        for start, stop in jobs:  # loop over windows
            window_blocks, xs = [], []
            for index, block in enumerate(blocks):  # loop over blocks
                block = np.asarray(block, dtype=np.int64)
                if not support[start:stop, block].any():
                    continue
                own = np.flatnonzero(block_of[bones_array[:, 0]] == index) if num_bones else np.zeros(0, np.int64)
                window_blocks.append(
                    _Block(
                        block,
                        support[start:stop, block],
                        observations[:, start:stop, block],
                        use[:, start:stop, block],
                        local_of[bones_array[own]].reshape(-1, 2),
                        own,
                        bone_scale[own],
                        None if anchors is None else anchors[start:stop, block],
                        weights,
                    )
                )
                xs.append(x_start[start:stop, block])
            if not window_blocks:
                continue
            seen = np.zeros(num_bones, dtype=np.int64)
            for block in window_blocks:
                seen[block.pair_ids] += block.seen
            window_free = free & (seen > 0)
            terms = _length_terms(window_free, prior, prior_sigma, symmetric_bones, reference, symmetry_sigma_ratio)
            meta = (start, stop, [block.joints for block in window_blocks], seen)
            yield meta, _WindowProblem(tuple(cameras), window_blocks, xs, lengths.copy(), window_free, terms, max_iterations, tolerance, factor_dtype)

    windows = _windows(frames, chunk_frames, overlap_frames)
    lengths = np.where(estimated, reference, 0.0)
    x_current = np.where(support[..., None], initial, 0.0)
    most_iterations, all_converged = 0, True
    seen_total = np.zeros(num_bones)
    sample = [windows[i] for i in np.unique(np.linspace(0, len(windows) - 1, min(length_windows, len(windows))).round().astype(int))]
    for free_pass in [True] if len(windows) == 1 else [True, False]:  # free lengths; then fixed take-wide ones
        blended = np.zeros_like(x_current)
        weight = np.zeros((frames, num_joints))
        length_sum, seen_total = np.zeros(num_bones), np.zeros(num_bones)
        jobs = sample if free_pass and len(windows) > 1 else windows
        for (start, stop, joints, seen), solved in (map_windows or map)(solve_window_item, window_items(jobs, x_current, lengths, estimated & free_pass)):
            xs, window_lengths, iterations, converged = solved
            most_iterations, all_converged = max(most_iterations, iterations), all_converged and converged
            ramp = _blend_weights(start, stop, frames, overlap_frames)
            for block_joints, xb in zip(joints, xs):
                blended[start:stop, block_joints] += ramp[:, None, None] * xb
                weight[start:stop, block_joints] += ramp[:, None]
            length_sum += seen * window_lengths
            seen_total += seen
        x_current = np.where(weight[..., None] > 0, blended / np.maximum(weight, 1e-300)[..., None], x_current)
        if free_pass:
            lengths = np.where(seen_total > 0, length_sum / np.maximum(seen_total, 1), lengths)
    points = np.where((support & (block_of >= 0)[None])[..., None], x_current, np.nan)
    bone_lengths = np.where(estimated & (seen_total > 0), lengths, np.nan)
    return BoneFit(points=points, bone_lengths=bone_lengths, iterations=most_iterations, converged=all_converged)
