"""Run under torch.distributed.run: train a tiny model, save this rank's weights."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _tiny import tiny_config, tiny_data  # noqa: E402

from usenhance.train import train  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    import os

    rank = int(os.environ["RANK"])
    cfg = tiny_config("cyclegan", epochs=1, crop=32)
    from usenhance import networks

    captured = {}
    orig = networks.Generators.__init__

    def init(self, c):  # keep a handle on the generators to dump them after training
        orig(self, c)
        captured["g"] = self

    networks.Generators.__init__ = init
    train(tiny_data(n=8), out / "run", cfg, device="cpu", quiet=True)
    torch.save({k: v.clone() for k, v in captured["g"].state_dict().items()}, out / f"rank{rank}.pt")


if __name__ == "__main__":
    main()
