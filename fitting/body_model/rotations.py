"""Rotations for the body model fit (torch, batched over any leading shape)."""

from __future__ import annotations

import torch

_SMALL_ANGLE_SQUARED = 1e-8  # rad^2: below it sin and cos use their Taylor series


def skew(vectors: torch.Tensor) -> torch.Tensor:
    """Cross-product matrices ``(..., 3, 3)`` of ``vectors (..., 3)``."""
    x, y, z = vectors.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(vectors.shape + (3,))


def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` of axis-angle vectors ``(..., 3)`` (radians).

    Rodrigues' formula with Taylor series near zero, so values and gradients are finite
    at the identity (where the fit starts)."""
    angle2 = (rotvec * rotvec).sum(-1)[..., None, None]
    small = angle2 < _SMALL_ANGLE_SQUARED
    safe2 = torch.where(small, torch.ones_like(angle2), angle2)
    angle = safe2.sqrt()
    a = torch.where(small, 1.0 - angle2 / 6.0, torch.sin(angle) / angle)
    b = torch.where(small, 0.5 - angle2 / 24.0, (1.0 - torch.cos(angle)) / safe2)
    k = skew(rotvec)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + a * k + b * (k @ k)
