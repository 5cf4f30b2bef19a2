"""Training one bundle autoencoder through ``medshared.training`` (seeded, resumable, DDP).

The run folder (``medshared.training.RunFolder``) holds ``config.json`` (model + training +
dataset summary), ``metrics.jsonl`` (every ``log_every`` updates: loss, MSE, bottleneck loss,
codebook perplexity over the interval (of the hard assignments for VQ-VAE/VQ-EMA, of the soft
weights for VQ-Diff, as the authors compute it), dead codes (never the nearest / most weighted
code during the interval), skipped updates; every ``save_every``: validation MSE; at the end the
SHA-256 of the weights), ``last.pt``/``best.pt``/``final.pt`` training states and ``model.safetensors``
(the inference export that ``encode``/``decode``/``evaluate`` load).

Resuming (``resume=True``) continues from ``last.pt`` and reproduces an uninterrupted run bit for
bit on CPU: model, optimiser, GradScaler and RNG states are restored and the data loader skips the
batches already seen in the current epoch. ``steps`` may be raised on resume (extend a run).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from streamvq import __version__
from streamvq.config import ModelConfig, TrainConfig
from streamvq.dataset import BundleDataset, TorchBundles
from streamvq.errors import StreamvqError

EXPORT_NAME = "model.safetensors"


@dataclass(frozen=True)
class TrainResult:
    """Summary of a finished run."""

    run_dir: Path
    export: Path
    steps: int
    final_loss: float
    val_mse: float | None
    seconds: float
    skipped: int
    weights_sha256: str
    """SHA-256 of this rank's final state dict (equal on every rank of a DDP run)."""


def weights_digest(model) -> str:  # noqa: ANN001
    """SHA-256 over the sorted names and bytes of ``model``'s state dict."""
    import hashlib

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _validation_mse(model, data, runtime, batch_size: int = 64) -> float | None:  # noqa: ANN001
    import torch

    from streamvq.losses import reconstruction_mse

    if data is None or len(data) == 0:
        return None
    was = model.training
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(data), batch_size):
            x = data[i: i + batch_size].to(runtime.device)
            out = model(x)
            total += float(reconstruction_mse(out.recon, x)) * len(x)
            n += len(x)
    model.train(was)
    return total / n


def train_model(
    dataset: BundleDataset,
    out_dir: str | Path,
    model_config: ModelConfig,
    train_config: TrainConfig,
    *,
    resume: bool = False,
    device: str = "auto",
    quiet: bool = False,
) -> TrainResult:
    """Train ``model_config.model`` on the training groups of ``dataset``; see the module doc."""
    import torch

    from medshared.training import (
        RunFolder,
        config_to_dict,
        export_model,
        launch,
        optimizer_step,
        progress,
    )
    from streamvq.losses import objective
    from streamvq.models import build_model

    train_set = dataset.train
    if len(train_set) == 0:
        raise StreamvqError("the dataset has no training groups")
    shape = train_set.bundles.shape[1:]
    if shape != (3, model_config.streamlines, model_config.points):
        raise StreamvqError(
            f"dataset bundles are {shape}, the model expects "
            f"(3, {model_config.streamlines}, {model_config.points})"
        )
    tc = train_config
    config = {
        "model": config_to_dict(model_config),
        "train": config_to_dict(tc),
        "data": {"groups": len(train_set), "val_groups": len(dataset.validation),
                 "norm_lo": dataset.norm.lo, "norm_hi": dataset.norm.hi,
                 "tracts": dataset.tract_names},
    }
    t0 = time.perf_counter()
    with launch(device=device, seed=tc.seed) as rt:
        # Non-main ranks check the folder before rank 0 writes config.json into it (RunFolder
        # refuses a folder that already holds a run, and would see rank 0's fresh config).
        run = None
        if not rt.is_main:
            run = RunFolder(out_dir, config, resume=resume, is_main=False,
                            allow_changes=("train.steps",))
        rt.barrier()
        if rt.is_main:
            run = RunFolder(out_dir, config, resume=resume, is_main=True,
                            allow_changes=("train.steps",))
        rt.barrier()
        assert run is not None
        model = build_model(model_config)
        net = rt.wrap(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr)
        scaler = rt.grad_scaler(tc.amp)
        objects = {"model": model, "optimizer": optimizer, "scaler": scaler}
        meta = run.resume(objects, map_location=rt.device)
        start = int(meta["step"]) if meta else 0
        data = TorchBundles(train_set.bundles)
        drop_last = len(data) >= tc.batch_size * rt.world_size
        loader = rt.loader(data, tc.batch_size, shuffle=True, seed=tc.seed,
                           num_workers=tc.num_workers, drop_last=drop_last)
        per_epoch = len(loader)
        if per_epoch == 0:
            raise StreamvqError("no batch: fewer training groups than ranks")
        val_data = TorchBundles(dataset.validation.bundles).data if len(dataset.validation) else None
        k = model_config.codebook_size
        usage = torch.zeros(k, dtype=torch.float64, device=rt.device)
        hard = torch.zeros(k, dtype=torch.float64, device=rt.device)
        sums = torch.zeros(3, dtype=torch.float64, device=rt.device)  # loss, mse, bottleneck
        count, skipped, last_loss, val_mse = 0, 0, float("nan"), None
        step = start
        bar = progress(total=tc.steps, desc=f"train {model_config.model}",
                       enabled=rt.is_main and not quiet, unit="step")
        bar.update(start)
        net.train()
        while step < tc.steps:
            epoch, skip = divmod(step, per_epoch)
            rt.set_epoch(loader, epoch, skip_batches=skip)
            for x in loader:
                x = x.to(rt.device, non_blocking=True)
                with rt.autocast(tc.amp):
                    out = net(x)
                obj = objective(out, x)
                outcome = optimizer_step(
                    obj.total, optimizer, scaler=scaler,
                    clip_grad_norm=tc.clip_grad_norm or None,
                )
                step += 1
                skipped += int(outcome.skipped)
                last_loss = outcome.loss
                sums += torch.stack([obj.total.detach(), obj.mse.detach(),
                                     obj.bottleneck.detach()]).double()
                count += 1
                if out.usage is not None:
                    usage += out.usage.double()
                    hard += torch.bincount(out.indices.reshape(-1), minlength=k).double()
                bar.update(1)
                if step % tc.log_every == 0 or step == tc.steps:
                    rt.all_reduce(sums, "mean")
                    rt.all_reduce(usage, "sum")
                    rt.all_reduce(hard, "sum")
                    record = {"loss": float(sums[0]) / count, "mse": float(sums[1]) / count,
                              "bottleneck_loss": float(sums[2]) / count, "skipped": skipped,
                              "epoch": epoch}
                    if model_config.model in ("vqvae", "vqema", "vqdiff"):
                        from streamvq.models.bottlenecks import perplexity

                        record["perplexity"] = float(perplexity(usage))
                        record["dead_codes"] = int((hard == 0).sum())
                    run.log(step, **record)
                    usage.zero_()
                    hard.zero_()
                    sums.zero_()
                    count = 0
                if step % tc.save_every == 0 or step == tc.steps:
                    val_mse = _validation_mse(model, val_data, rt)
                    if val_mse is not None:
                        run.log(step, val_mse=val_mse)
                    state_meta = {"package": "streamvq", "version": __version__, "step": step,
                                  "epoch": epoch, "seed": tc.seed}
                    if val_mse is not None and run.update_best("val_mse", val_mse, "min"):
                        run.save("best", objects, state_meta)
                    run.save("last", objects, state_meta)
                if step >= tc.steps:
                    break
        bar.close()
        run.save("final", objects, {"package": "streamvq", "version": __version__,
                                    "step": step, "seed": tc.seed})
        export = run.file(EXPORT_NAME)
        if rt.is_main:
            export_model(
                export, model, package="streamvq", version=__version__,
                kind=model_config.model, model_config=config_to_dict(model_config),
                extra={"norm_lo": dataset.norm.lo, "norm_hi": dataset.norm.hi, "step": step,
                       "tract_names": dataset.tract_names, "val_mse": val_mse},
            )
        digest = weights_digest(model)
        run.log(step, weights_sha256=digest)
        rt.barrier()
    return TrainResult(Path(out_dir), export, step, float(last_loss), val_mse,
                       time.perf_counter() - t0, skipped, digest)


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A loaded inference export: the model (eval mode) and the normalisation it was trained with."""

    model: object
    kind: str
    config: ModelConfig
    norm_lo: float
    norm_hi: float
    path: Path

    @property
    def norm(self):  # noqa: ANN201
        from streamvq.grouping import Normalisation

        return Normalisation(self.norm_lo, self.norm_hi)


def load_trained(path: str | Path, kinds: tuple[str, ...] | None = None,
                 device: str = "cpu") -> TrainedModel:
    """Load ``model.safetensors`` written by :func:`train_model` (refuses other packages/kinds)."""
    from medshared.training import config_from_dict, load_model_export
    from streamvq.models import build_model

    p = Path(path)
    if p.is_dir():
        p = p / EXPORT_NAME
    exp = load_model_export(p, package="streamvq", kinds=kinds, map_location=device)
    try:
        cfg = config_from_dict(ModelConfig, exp.model_config)
    except (TypeError, ValueError) as exc:
        raise StreamvqError(f"{p}: bad model config in the export ({exc})") from None
    if cfg.model != exp.kind:
        raise StreamvqError(f"{p}: export kind {exp.kind!r} does not match its config {cfg.model!r}")
    model = build_model(cfg)
    try:
        model.load_state_dict(exp.state_dict)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise StreamvqError(f"{p}: weights do not fit a {cfg.model} model ({first})") from None
    model.to(device).eval()
    return TrainedModel(model, exp.kind, cfg, float(exp.meta["norm_lo"]),
                        float(exp.meta["norm_hi"]), p)


