"""Upsampling layer (no parameters): a decoder's way back up to the input's size.

Math: nnscratch/functions/upsampling.py and docs/derivations/upsampling.md.

    UpSampling2D(2)     (N, C, H, W) -> (N, C, 2 H, 2 W), nearest neighbour
"""
from __future__ import annotations

from ..functions.upsampling import UpSampling2D as UpSampling2DFn
from .base import StatelessLayer


class UpSampling2D(StatelessLayer):
    """Nearest-neighbour upsampling of (N, C, H, W) by integer factors: (N, C, H sh, W sw)."""

    fn = UpSampling2DFn
    ndim = (4,)

    def __init__(self, scale=2):
        super().__init__()
        self.scale = scale

    def _options(self) -> dict:
        return {"scale": self.scale}

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


__all__ = ["UpSampling2D"]
