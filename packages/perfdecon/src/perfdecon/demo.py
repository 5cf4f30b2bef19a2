"""perfdecon's demo for the shared table (``medshared demo`` / ``perfdecon demo``).

:func:`demo_rows` runs the main job on built-in data: the grid-phantom accuracy of the
deconvolution methods (true AIF) and the whole ``maps`` pipeline (automatic AIF, core Dice) on
brain phantoms written to NIfTI and read back, exactly as a user would run it.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

TOOL = "perfdecon"


def demo_rows(out_dir: Path, quick: bool) -> list:
    """Run the demo, print its detailed tables, return the headline rows.

    Parameters
    ----------
    out_dir:
        Folder for the phantom cases and their maps.
    quick:
        One small brain case instead of two.

    Returns
    -------
    list of medshared.demo.ResultRow
    """
    import numpy as np

    from medshared.demo import ResultRow
    from medshared.io import read_nifti
    from medshared.metrics import dice
    from perfdecon.evaluate import accuracy_table, phantom_accuracy
    from perfdecon.maps_job import AifChoice, run_maps
    from perfdecon.phantom_job import PhantomSpec, write_phantom

    t0 = time.perf_counter()
    acc = phantom_accuracy(residues=("gamma",), noise_levels=(0.0,), delays=(0.0, 3.0))
    print("Grid phantom, gamma residue, true AIF, MTT >= 4 s (errors: median [IQR], % or s)")
    print(accuracy_table(acc))
    rows = []
    for r in acc:
        if r["delay_s"] == 0.0 and r["method"] in ("tikhonov", "ssvd", "osvd"):
            if math.isfinite(r["cbf_med"]):
                rows.append(ResultRow(TOOL, "grid phantom, gamma residue", r["method"],
                                      "median CBF error", r["cbf_med"], "%"))
    n_cases, size = (1, 96) if quick else (2, 128)
    dices: dict[str, list[float]] = {"auto": [], "mask": []}
    for i in range(n_cases):
        case_dir = Path(out_dir) / f"phantom_{i}"
        write_phantom(case_dir, PhantomSpec(seed=100 + i, slices=2, size=size, frames=40))
        truth = read_nifti(case_dir / "core_mask.nii.gz").data > 0
        for kind in dices:
            aif = AifChoice("mask", case_dir / "aif_mask.nii.gz") if kind == "mask" else None
            run = run_maps(case_dir / "ctp.nii.gz", Path(out_dir) / f"maps_{i}_{kind}", aif=aif,
                           figures=kind == "auto")
            dices[kind].append(dice(read_nifti(run.out / "core.nii.gz").data > 0, truth))
            print(f"brain phantom {i} ({size}x{size}x2, 40 frames), {kind} AIF: core Dice "
                  f"{dices[kind][-1]:.3f}, AIF quality {run.summary['aif']['quality']:.2f}")
    rows.append(ResultRow(TOOL, f"{n_cases} brain phantom(s) {size}x{size}x2",
                          "maps, auto AIF, Tikhonov 0.3", "core Dice", float(np.mean(dices["auto"])),
                          "", f"true-artery AIF {np.mean(dices['mask']):.3f}"))
    print(f"perfdecon demo took {time.perf_counter() - t0:.1f} s")
    return rows


__all__ = ["demo_rows"]
