"""The demo: simulate a small dataset, train the three models briefly, enhance, score.

Budget (stated in the printout): 120x120 simulated pairs (12 per organ, 5 organs; seeded
70/10/20 split), every model trained for the same number of iterations (``STEPS``, batch 4,
64x64 crops, U-Net ngf 16 with 6 stages, PatchGAN ndf 16) on 1 CPU thread, then the held-out
test images are enhanced at full size (padded to 128 and cropped back) and scored in both metric
conventions against reference-low (the unenhanced input). Without torchvision's ImageNet VGG-16
weights in the torch hub cache, LPIPS runs on a random VGG trunk and is labelled so.
"""

from __future__ import annotations

import time
from pathlib import Path

from medshared.demo import ResultRow

__all__ = ["STEPS", "demo_rows"]

STEPS = 40
QUICK_STEPS = 12
PAIRS_PER_ORGAN = 12
SIZE = 120


def demo_rows(out_dir: Path, quick: bool) -> list[ResultRow]:
    """Run the demo into ``out_dir``; print its tables; return the headline rows."""
    import torch

    from usenhance.data import find_pairs, load_images, split_pairs
    from usenhance.evaluate import evaluate_models, save_grids
    from usenhance.perceptual import build_lpips, default_vgg_path
    from usenhance.phantom import SimConfig
    from usenhance.predict import load_enhancer
    from usenhance.simdata import write_dataset
    from usenhance.train import quick_config, train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        out_dir = Path(out_dir)
        data = out_dir / "data"
        if not data.exists():
            write_dataset(data, PAIRS_PER_ORGAN, config=SimConfig(shape=(SIZE, SIZE)), seed=0)
        real_lpips = default_vgg_path().is_file()
        steps = QUICK_STEPS if quick else STEPS
        print(f"usenhance demo: {PAIRS_PER_ORGAN} simulated {SIZE}x{SIZE} pairs per organ; each "
              f"model trained {steps} iterations (batch 4, 64x64 crops, ngf 16) on 1 CPU thread; "
              f"LPIPS backbone: {'ImageNet VGG-16' if real_lpips else 'random VGG (no weights)'}")
        ckpts = {}
        for model in ("cyclegan-perceptual", "cyclegan", "pix2pix"):
            cfg = quick_config(model, epochs=10_000, max_steps=steps,
                               lpips_random_backbone=not real_lpips, val_images=0)
            run_dir = out_dir / f"run_{model}"
            if (run_dir / "generator.safetensors").is_file():
                ckpts[model] = run_dir / "generator.safetensors"
                continue
            res = train(data, run_dir, cfg, device="cpu", quiet=True)
            print(f"  trained {model}: {res.steps} iterations in {res.seconds:.1f} s")
            ckpts[model] = res.export
        pairs = find_pairs(data)
        test = split_pairs(pairs, (0.7, 0.1, 0.2), 0).test
        lows, highs = load_images(test)
        models = {"reference-low": lambda x: x}
        models.update({m: load_enhancer(p) for m, p in ckpts.items()})
        per = build_lpips(random_backbone=not real_lpips)
        outputs: dict = {}
        res = evaluate_models([x.image for x in lows], [x.image for x in highs],
                              [x.organ for x in lows], [x.path.name for x in lows], models,
                              "cyclegan-perceptual", per.module, per.label, outputs=outputs)
        save_grids(out_dir, [x.image for x in lows], [x.image for x in highs],
                   [x.organ for x in lows], outputs)
        for c in ("paper", "challenge"):
            print(f"\n[{c} convention] {len(lows)} test images; p: one-sided Wilcoxon that "
                  "cyclegan-perceptual is better")
            print(res.table(c))
        ref = res.summary["challenge"]["reference-low"]["overall"]
        prop = res.summary["challenge"]["cyclegan-perceptual"]["overall"]
        better = [m for m in ("SSIM", "LNCC", "PSNR") if prop[m] > ref[m]]
        if prop["LPIPS"] < ref["LPIPS"]:
            better.append(per.label)
        print(f"\ncyclegan-perceptual beats reference-low (challenge convention) in: "
              f"{', '.join(better) or 'none'} of SSIM, LNCC, PSNR, {per.label}")
        print(f"demo wall time {time.perf_counter() - t0:.1f} s; grids in {out_dir}")
        rows = []
        units = {"SSIM": "", "LNCC": "", "PSNR": "dB", "LPIPS": ""}
        for model in ("cyclegan-perceptual", "cyclegan", "pix2pix"):
            s = res.summary["challenge"][model]["overall"]
            for m, u in units.items():
                rows.append(ResultRow("usenhance", f"sim {len(lows)} test, {steps} it",
                                      model, per.label if m == "LPIPS" else m, s[m], u,
                                      f"reference-low {ref[m]:.4g}"))
        return rows
    finally:
        torch.set_num_threads(threads)
