"""Points of a skinned body model as linear blend skinning of a few rig vertices.

Every point the fit compares with a joint of the take is a fixed combination of *rig
vertices*: mesh vertices (a landmark such as a fingertip, or the vertices a keypoint
regressor averages) or virtual vertices at joint centres (a bone head, a joint
regressed from the rest mesh). A rig vertex ``u`` at rest position ``v_u`` with
skinning weights ``w_uk`` moves to ``sum_k w_uk T_k [v_u; 1]`` (``T_k``: bone ``k``'s
rest-to-posed transform); a point ``p = sum_u R_pu x_u`` therefore is
``sum_k T_k H_pk`` with ``H_pk = sum_u R_pu w_uk [v_u; 1]``. Only ``H`` depends on the
shape, so the cost per frame is one ``(points x bones)`` product instead of skinning
the whole mesh.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PointRig:
    """How ``P`` points follow ``K`` bones through ``U`` rig vertices.

    ``regressor (P, U)``: each point as a combination of rig vertices (rows sum to 1;
    a row of zeros: a point the model does not have); ``skin_weights (U, K)``: linear
    blend skinning weights of the rig vertices (rows sum to 1).
    """

    regressor: torch.Tensor
    skin_weights: torch.Tensor


def rig_moments(rig: PointRig, rest: torch.Tensor) -> torch.Tensor:
    """``H (..., P, 4, K) = sum_u R_pu [v_u; 1] w_uk`` of rig vertex rest positions ``rest
    (U, 3)``, or ``(F, U, 3)`` when they depend on the pose (pose blend shapes)."""
    homogeneous = torch.cat([rest, torch.ones_like(rest[..., :1])], dim=-1)  # (..., U, 4)
    return (rig.regressor[:, None, :] * homogeneous.transpose(-1, -2)[..., None, :, :]) @ rig.skin_weights


def skin_points(moments: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """Posed points ``(F, P, 3)`` of :func:`rig_moments` ``(P, 4, K)`` or ``(F, P, 4, K)``
    moved by the bones' rest-to-posed transforms ``transforms (F, K, 4, 4)`` (or ``(F, K, 3, 4)``)."""
    pattern = "fkij,pjk->fpi" if moments.dim() == 3 else "fkij,fpjk->fpi"
    return torch.einsum(pattern, transforms[..., :3, :], moments)
