"""Coding units (blocks) and the global coefficient scan order.

The coded array is ``(T, Z, Y, X)``. For every volume ``t`` the slices flagged in the grouping
form one 3D block (transformed along Z, Y and X), and the remaining slices form one 2D block
(transformed along Y and X only, i.e. slice by slice). All blocks share one embedded stream: the
scan visits the low-pass bands of every block first, then detail subbands from the coarsest level
to the finest; within a rank, blocks in order (volume by volume, 3D block before 2D block), and
subbands in a fixed order; within a subband, C raster order ``(z, y, x)``. For a 2D block a
subband box spans all its slices, so the same subband of consecutive slices is scanned together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wdrcodec.decomposition import Subband, axis_levels, subbands


@dataclass(frozen=True)
class Block:
    """One transform unit: volume ``t``, slice indices ``z`` (into Z), per-axis levels ``lv``."""

    t: int
    z: np.ndarray
    lv: tuple[int, int, int]
    shape: tuple[int, int, int]
    offset: int
    bands: tuple[Subband, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class Layout:
    """All blocks of an array and the scan order over their concatenated coefficients."""

    blocks: tuple[Block, ...]
    boxes: np.ndarray  # (B, 9) int64 rows (offset, ny, nx, z0, z1, y0, y1, x0, x1), scan order
    box_class: np.ndarray  # (B,) subband class of each box
    n: int

    @property
    def classes(self) -> np.ndarray:
        """``(N,)`` uint8 subband class per scanned coefficient: 0 low band, else the level
        (1 finest, capped at 7); the coder picks its run-length contexts by class."""
        sizes = (self.boxes[:, 4] - self.boxes[:, 3]) * (self.boxes[:, 6] - self.boxes[:, 5])
        sizes = sizes * (self.boxes[:, 8] - self.boxes[:, 7])
        return np.repeat(self.box_class.astype(np.uint8), sizes)

    @property
    def order(self) -> np.ndarray:
        """``(N,)`` scan order as indices into the concatenated flattened blocks."""
        parts = []
        for off, ny, nx, z0, z1, y0, y1, x0, x1 in self.boxes:
            idx = (
                np.arange(z0, z1, dtype=np.int64)[:, None, None] * (ny * nx)
                + np.arange(y0, y1, dtype=np.int64)[None, :, None] * nx
                + np.arange(x0, x1, dtype=np.int64)[None, None, :]
            )
            parts.append(idx.ravel() + off)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def make_layout(
    shape4: tuple[int, int, int, int], grouping: np.ndarray, levels: int, packet: bool
) -> Layout:
    """Build blocks and the scan order for a ``(T, Z, Y, X)`` array and a ``(T, Z)`` grouping."""
    t_n, _z_n, y_n, x_n = shape4
    blocks: list[Block] = []
    offset = 0
    for t in range(t_n):
        g = np.asarray(grouping[t], dtype=bool)
        for is3d in (True, False):
            z = np.flatnonzero(g if is3d else ~g)
            if z.size == 0:
                continue
            shape = (int(z.size), y_n, x_n)
            lv = axis_levels(shape, levels, transform_z=is3d)
            bands = tuple(subbands(shape, lv, packet and is3d))
            blocks.append(Block(t, z, lv, shape, offset, bands))
            offset += int(np.prod(shape))
    keyed = []
    for bi, blk in enumerate(blocks):
        for si, band in enumerate(blk.bands):
            keyed.append((band.rank, bi, si))
    keyed.sort()
    rows, classes = [], []
    for rank, bi, si in keyed:
        blk = blocks[bi]
        _, ny, nx = blk.shape
        rows.append((blk.offset, ny, nx, *blk.bands[si].box))
        classes.append(0 if rank == 0 else min(100 - rank, 7))
    boxes = np.array(rows, dtype=np.int64).reshape(-1, 9)
    return Layout(tuple(blocks), boxes, np.array(classes, dtype=np.int64), offset)
