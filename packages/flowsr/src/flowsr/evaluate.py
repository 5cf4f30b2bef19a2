"""Table-1-style comparison of networks and interpolation baselines, plus figures.

Every method super-resolves the same low-res series; metrics (:mod:`flowsr.metrics`) are taken
against the high-res reference at the peak-systolic frame and at a diastolic frame. Flow rate
(mL/s, :func:`flowsr.flow.flow_rate`) is measured through a plane perpendicular to the vessel at
the given point, within the reference lumen for every method, and peak speed (m/s) inside the
reference lumen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flowsr.baselines import interpolate
from flowsr.config import PredictConfig
from flowsr.flow import flow_rate, peak_velocity
from flowsr.metrics import FlowMetrics, frame_metrics


@dataclass(frozen=True)
class MethodResult:
    """One method at one frame.

    Attributes
    ----------
    method, frame_label : str
        E.g. ``"SURFR-Net"``, ``"peak systole (t=3)"``.
    metrics : FlowMetrics
        Table-1 metrics.
    flow_ml_s, flow_ref_ml_s : float
        Flow rate through the measurement plane, method and reference (mL/s).
    peak_speed, peak_speed_ref : float
        Peak speed in the reference lumen, method and reference (m/s).
    """

    method: str
    frame_label: str
    metrics: FlowMetrics
    flow_ml_s: float
    flow_ref_ml_s: float
    peak_speed: float
    peak_speed_ref: float


@dataclass(frozen=True, eq=False)
class Evaluation:
    """All results plus the fields needed for figures."""

    results: list[MethodResult]
    frames: dict[str, int]
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    seg: dict[str, np.ndarray] = field(default_factory=dict)


def evaluate(
    hr_velocity: np.ndarray,
    hr_mask: np.ndarray,
    lr_velocity: np.ndarray,
    scale: np.ndarray,
    models: Mapping[str, object],
    frames: Mapping[str, int],
    plane: tuple[Sequence[float], Sequence[float], float],
    dx_mm: float,
    *,
    baselines: Sequence[str] = ("trilinear", "tricubic"),
    predict_config: PredictConfig | None = None,
    threshold: float = 0.5,
    device: str = "cpu",
) -> Evaluation:
    """Compare ``models`` (name -> SURFRNet) and interpolation ``baselines``.

    Parameters
    ----------
    hr_velocity : np.ndarray
        ``(3, T, X, Y, Z)`` reference (m/s).
    hr_mask : np.ndarray
        ``(X, Y, Z)`` reference lumen.
    lr_velocity : np.ndarray
        ``(3, T, X/2, Y/2, Z/2)`` low-res input (m/s).
    scale : np.ndarray
        ``(T,)`` normalisation (max VENC, m/s).
    frames : mapping
        Label -> frame index (e.g. ``{"peak systole": 3, "diastole": 9}``).
    plane : (point_mm, normal, radius_mm)
        Flow-rate measurement disk.
    dx_mm : float
        High-res voxel size (mm).
    """
    from flowsr.predict import predict_series
    from flowsr.wmf import wmf_feature

    idx = list(frames.values())
    labels = [f"{k} (t={v})" for k, v in frames.items()]
    wmf = wmf_feature(lr_velocity, "evaluate") if lr_velocity.shape[1] >= 3 else None
    outputs: dict[str, np.ndarray] = {}
    segs: dict[str, np.ndarray] = {}
    for name in baselines:
        outputs[name] = interpolate(lr_velocity[:, idx], name)
    for name, model in models.items():
        pred = predict_series(model, lr_velocity[:, idx], scale[idx], predict_config, wmf=wmf,
                              device=device)
        outputs[name] = pred.velocity
        if pred.probability is not None:
            segs[name] = pred.segmentation(threshold)
    point, normal, radius = plane
    ref = hr_velocity[:, idx]
    q_ref = flow_rate(ref, [dx_mm] * 3, point, normal, radius, mask=hr_mask)
    pk_ref = peak_velocity(ref, hr_mask)
    results = []
    for name, vel in outputs.items():
        q = flow_rate(vel, [dx_mm] * 3, point, normal, radius, mask=hr_mask)
        pk = peak_velocity(vel, hr_mask)
        for k, label in enumerate(labels):
            seg = segs[name][k] if name in segs else None
            m = frame_metrics(vel[:, k], ref[:, k], hr_mask, seg)
            results.append(MethodResult(name, label, m, float(q[k]), float(q_ref[k]),
                                        float(pk[k]), float(pk_ref[k])))
    fields = {"HR": ref, "LR": lr_velocity[:, idx], **outputs}
    if wmf is not None:
        fields["WMF"] = wmf
    return Evaluation(results, dict(frames), fields, segs)


def format_table(ev: Evaluation) -> str:
    """The paper's Table 1 layout, one block per frame, plus flow rate and peak speed."""
    head = (f"{'method':<22} {'E_rel (%)':>15} {'PVNR (dB)':>9} {'nRMS_speed':>10} "
            f"{'E_dir (1e-3)':>16} {'IoU':>6} {'Q (mL/s)':>9} {'Q ref':>7} {'peak (m/s)':>10}")
    lines = []
    for label in dict.fromkeys(r.frame_label for r in ev.results):
        lines += [f"-- {label}", head]
        for r in (x for x in ev.results if x.frame_label == label):
            m = r.metrics
            iou = "-" if m.iou is None else f"{m.iou:.3f}"
            lines.append(
                f"{r.method:<22} {m.rel_error:6.2f} ± {m.rel_error_std:6.2f} {m.pvnr:9.2f} "
                f"{m.nrms_speed:10.4f} {1e3 * m.dir_error:6.1f} ± {1e3 * m.dir_error_std:7.1f} "
                f"{iou:>6} {r.flow_ml_s:9.1f} {r.flow_ref_ml_s:7.1f} {r.peak_speed:10.3f}"
            )
    return "\n".join(lines)


def save_figures(ev: Evaluation, folder: Path, method: str | None = None) -> list[Path]:
    """Write ``speed_slices.png`` (|v| LR / method / HR), ``wmf.png`` and ``segmentation.png``.

    Slices are axial (constant Z) through the reference's most fluid-filled Z plane at the first
    evaluated frame (peak systole). ``method`` defaults to the first network.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    nets = [k for k in ev.fields if k not in ("HR", "LR", "WMF", "trilinear", "tricubic")]
    method = method or (nets[0] if nets else "trilinear")
    hr = np.linalg.norm(ev.fields["HR"][:, 0], axis=0)
    z = int(np.argmax((hr > 0).sum(axis=(0, 1))))
    panels = [("LR (input)", np.linalg.norm(ev.fields["LR"][:, 0], axis=0)[:, :, z // 2]),
              ("trilinear", np.linalg.norm(ev.fields["trilinear"][:, 0], axis=0)[:, :, z])]
    panels += [(method, np.linalg.norm(ev.fields[method][:, 0], axis=0)[:, :, z]), ("HR", hr[:, :, z])]
    written = []
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
    vmax = float(hr.max())
    for ax, (title, img) in zip(axes, panels, strict=True):
        im = ax.imshow(img.T, origin="lower", cmap="inferno", vmin=0, vmax=vmax)
        ax.set_title(title)
        ax.axis("off")
    fig.colorbar(im, ax=axes, label="|v| (m/s)", shrink=0.8)
    written.append(_save(fig, folder / "speed_slices.png"))
    if "WMF" in ev.fields:
        fig, ax = plt.subplots(figsize=(4, 3.6))
        im = ax.imshow(ev.fields["WMF"][:, :, z // 2].T, origin="lower", cmap="viridis")
        ax.set_title("WMF_min / Nyquist (low-res)")
        ax.axis("off")
        fig.colorbar(im, ax=ax)
        written.append(_save(fig, folder / "wmf.png"))
    if ev.seg:
        name = method if method in ev.seg else next(iter(ev.seg))
        seg = ev.seg[name][0][:, :, z]
        ref = hr[:, :, z] > 0
        fig, ax = plt.subplots(figsize=(4, 3.6))
        ax.imshow(hr[:, :, z].T, origin="lower", cmap="gray")
        ax.contour(ref.T, levels=[0.5], colors="lime", linewidths=1.0)
        ax.contour(seg.T.astype(float), levels=[0.5], colors="red", linewidths=1.0)
        ax.set_title(f"segmentation: {name} (red) vs reference (green)")
        ax.axis("off")
        written.append(_save(fig, folder / "segmentation.png"))
    return written


def _save(fig, path: Path) -> Path:  # noqa: ANN001
    import matplotlib.pyplot as plt

    from medshared.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight")
    plt.close(fig)
    return path
