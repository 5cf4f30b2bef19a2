"""Whole-volume inference over all frames with overlapping patches and trimmed borders.

The low-res volume is cut into patches of ``patch`` voxels every ``stride`` voxels (paper:
32 x 32 x 16 every 28, 28, 12); the last patch of an axis is aligned to the volume's end, and a
volume smaller than a patch is edge-padded. Each output voxel is taken from exactly one patch:
the one whose centre region owns it (region boundaries in the middle of each overlap), so a
patch's outer ``(patch - stride) / 2`` voxels are trimmed wherever a neighbour covers them. All
patches of all frames go through the network in batches of ``batch_size``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from flowsr.config import PredictConfig
from flowsr.errors import FlowsrError

FACTOR = 2


@dataclass(frozen=True, eq=False)
class Prediction:
    """Super-resolved series.

    Attributes
    ----------
    velocity : np.ndarray
        ``(3, T, 2x, 2y, 2z)`` float32 m/s.
    probability : np.ndarray or None
        ``(T, 2x, 2y, 2z)`` float32 segmentation probability (None without the head).
    patches : int
        Patches evaluated (all frames).
    """

    velocity: np.ndarray
    probability: np.ndarray | None
    patches: int

    def segmentation(self, threshold: float = 0.5) -> np.ndarray | None:
        """``(T, 2x, 2y, 2z)`` bool mask ``probability >= threshold``."""
        return None if self.probability is None else self.probability >= threshold


def axis_tiles(n: int, patch: int, stride: int) -> list[tuple[int, int, int]]:
    """Tiles of one axis: ``(start, own_from, own_to)`` in low-res voxels.

    ``start`` is the patch's first voxel, ``[own_from, own_to)`` the voxels it writes. The owned
    ranges partition ``[0, max(n, patch))``.
    """
    if stride > patch:
        raise FlowsrError(f"stride {stride} must not exceed the patch size {patch} (gaps)")
    n_eff = max(n, patch)
    starts = list(range(0, n_eff - patch + 1, stride))
    if starts[-1] != n_eff - patch:
        starts.append(n_eff - patch)
    tiles = []
    for i, s in enumerate(starts):
        lo = 0 if i == 0 else (starts[i - 1] + patch + s) // 2
        hi = n_eff if i == len(starts) - 1 else (s + patch + starts[i + 1]) // 2
        tiles.append((s, lo, hi))
    return tiles


def stitch_predict(
    forward: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]],
    inputs: np.ndarray,
    config: PredictConfig | None = None,
    progress: Callable | None = None,
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Apply ``forward`` patch-wise to ``inputs`` ``(T, C, x, y, z)`` and stitch the 2x outputs.

    ``forward`` maps a batch ``(B, C, px, py, pz)`` to ``(velocity (B, 3, 2px, 2py, 2pz),
    probability (B, 1, ...) or None)``. Returns the stitched velocity ``(T, 3, 2x, 2y, 2z)``,
    probability ``(T, 2x, 2y, 2z)`` or None, and the number of patches.
    """
    cfg = config or PredictConfig()
    n_t, _, *grid = inputs.shape
    size = (cfg.patch_x, cfg.patch_y, cfg.patch_z)
    stride = (cfg.stride_x, cfg.stride_y, cfg.stride_z)
    pad = [(0, 0), (0, 0)] + [(0, max(0, p - n)) for n, p in zip(grid, size, strict=True)]
    x = np.pad(inputs, pad, mode="edge") if any(p[1] for p in pad) else inputs
    tiles = [axis_tiles(n, p, s) for n, p, s in zip(grid, size, stride, strict=True)]
    jobs = [(t, a, b, c) for t in range(n_t) for a in tiles[0] for b in tiles[1] for c in tiles[2]]
    hr_grid = [FACTOR * max(n, p) for n, p in zip(grid, size, strict=True)]
    vel = np.zeros((n_t, 3, *hr_grid), np.float32)
    prob: np.ndarray | None = None
    it = range(0, len(jobs), cfg.batch_size)
    for j0 in progress(it) if progress is not None else it:
        chunk = jobs[j0 : j0 + cfg.batch_size]
        batch = np.stack([
            x[t, :, a[0] : a[0] + size[0], b[0] : b[0] + size[1], c[0] : c[0] + size[2]]
            for t, a, b, c in chunk
        ])
        v_out, p_out = forward(batch)
        if p_out is not None and prob is None:
            prob = np.zeros((n_t, *hr_grid), np.float32)
        for k, (t, a, b, c) in enumerate(chunk):  # one block copy per patch
            dst = tuple(slice(FACTOR * r[1], FACTOR * r[2]) for r in (a, b, c))
            src = tuple(slice(FACTOR * (r[1] - r[0]), FACTOR * (r[2] - r[0])) for r in (a, b, c))
            vel[(t, slice(None), *dst)] = v_out[(k, slice(None), *src)]
            if prob is not None:
                prob[(t, *dst)] = p_out[(k, 0, *src)]
    crop = tuple(slice(0, FACTOR * n) for n in grid)
    vel = vel[(slice(None), slice(None), *crop)]
    prob = None if prob is None else prob[(slice(None), *crop)]
    return vel, prob, len(jobs)


def network_inputs(
    velocity: np.ndarray, scale: np.ndarray, wmf: np.ndarray | None, use_wmf: bool
) -> np.ndarray:
    """Network input ``(T, 3|4, x, y, z)``: velocity / scale per frame, plus WMF."""
    x = np.moveaxis(np.asarray(velocity, np.float32), 1, 0) / np.asarray(
        scale, np.float32
    ).reshape(-1, 1, 1, 1, 1)
    if use_wmf:
        if wmf is None:
            raise FlowsrError(
                "this model takes WMF, which needs the time axis (>= 3 frames); the series has "
                f"{velocity.shape[1]} frame(s): use an SR-only model or one trained without WMF"
            )
        x = np.concatenate([x, np.broadcast_to(wmf, (x.shape[0], 1, *wmf.shape))], axis=1)
    return np.ascontiguousarray(x, np.float32)


def predict_series(
    model,  # noqa: ANN001 - SURFRNet
    velocity: np.ndarray,
    scale: np.ndarray,
    config: PredictConfig | None = None,
    *,
    wmf: np.ndarray | None = None,
    device: str = "cpu",
    quiet: bool = True,
) -> Prediction:
    """Super-resolve a low-res series with a trained network.

    Parameters
    ----------
    model : SURFRNet
        Trained network (eval mode).
    velocity : np.ndarray
        ``(3, T, x, y, z)`` low-res velocity (m/s).
    scale : np.ndarray
        ``(T,)`` normalisation per frame (max VENC over components, m/s).
    config : PredictConfig, optional
        Patch size, stride, batch size.
    wmf : np.ndarray, optional
        ``(x, y, z)`` WMF feature (computed from ``velocity`` when the model needs it and it is
        not given).
    device : str
        Torch device.
    quiet : bool
        No progress bar.
    """
    import torch

    from flowsr.wmf import wmf_feature

    use_wmf = bool(model.config.use_wmf)
    if use_wmf and wmf is None:
        wmf = wmf_feature(velocity, "predict")
    x = network_inputs(velocity, scale, wmf, use_wmf)
    dev = torch.device(device)
    model = model.to(dev, memory_format=torch.channels_last_3d).eval()

    def forward(batch: np.ndarray):  # noqa: ANN202
        with torch.inference_mode():
            xb = torch.from_numpy(batch).to(dev).contiguous(memory_format=torch.channels_last_3d)
            out = model(xb)
        prob = out.probability
        return out.velocity.float().cpu().numpy(), (
            None if prob is None else prob.float().cpu().numpy()
        )

    bar = None
    if not quiet:
        from medshared.training import progress as _progress

        def bar(it):  # noqa: ANN001, ANN202
            return _progress(it, desc="predict", unit="batch")

    vel, prob, n = stitch_predict(forward, x, config, bar)
    vel = vel * np.asarray(scale, np.float32).reshape(-1, 1, 1, 1, 1)
    return Prediction(np.ascontiguousarray(np.moveaxis(vel, 0, 1)), prob, n)
