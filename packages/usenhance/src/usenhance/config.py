"""The package's typed configs: every default is declared here, once.

``TrainConfig`` holds a run's whole configuration (it is saved as the run folder's
``config.json``); its nested ``NetConfig`` and ``LossWeights`` become the ``--net-*`` and
``--loss-*`` flags of ``usenhance train``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["MODELS", "LossWeights", "NetConfig", "TrainConfig"]

ModelName = Literal["cyclegan-perceptual", "cyclegan", "pix2pix"]
MODELS: tuple[str, ...] = ("cyclegan-perceptual", "cyclegan", "pix2pix")


@dataclass(frozen=True)
class NetConfig:
    """Generator and discriminator architecture."""

    ngf: int = field(default=64, metadata={"help": "U-Net channels of the first stage", "min": 1})
    num_downs: int = field(default=8, metadata={
        "help": "U-Net down-sampling stages; images are padded to multiples of 2**num_downs "
                "(8 = pix2pix unet_256)", "min": 2, "max": 10})
    dropout: float = field(default=0.5, metadata={
        "help": "dropout probability in the inner U-Net decoder stages", "min": 0.0, "max": 0.95})
    n_dropout: int = field(default=3, metadata={
        "help": "number of inner decoder stages with dropout", "min": 0})
    ndf: int = field(default=64, metadata={"help": "PatchGAN channels of the first layer", "min": 1})
    d_layers: int = field(default=3, metadata={
        "help": "PatchGAN stride-2 layers (3: 70x70 patches, 30x30 map at 256x256)", "min": 1,
        "max": 6})
    spectral_norm: bool = field(default=True, metadata={
        "help": "spectral normalisation in the discriminators"})
    channels: int = field(default=1, metadata={
        "help": "image channels (grayscale B-mode: 1)", "min": 1, "max": 1})

# Parse-time bounds. The shared flag parser checks closed intervals, so an open lower bound
# "> 0" (learning rate, StepLR factor, real label) is the tiny positive minimum OPEN_ZERO.
OPEN_ZERO = 1e-12
MAX_LR = 10.0
MAX_WEIGHT = 1e6  # loss weights: [0, 1e6]


@dataclass(frozen=True)
class LossWeights:
    """Loss weights (paper: adv 1, cycle 10, paired L1 2, LPIPS 10) and label smoothing."""

    adv: float = field(default=1.0, metadata={"help": "LSGAN adversarial weight", "min": 0.0,
                                              "max": MAX_WEIGHT})
    cycle: float = field(default=10.0, metadata={"help": "cycle-consistency L1 weight (cyclegan*)",
                                                  "min": 0.0, "max": MAX_WEIGHT})
    paired: float = field(default=2.0, metadata={
        "help": "paired L1 weight on (G_H(L), H) and (G_L(H), L) (cyclegan-perceptual)", "min": 0.0,
        "max": MAX_WEIGHT})
    perceptual: float = field(default=10.0, metadata={
        "help": "LPIPS weight on the same pairs (cyclegan-perceptual)", "min": 0.0,
        "max": MAX_WEIGHT})
    pix2pix_l1: float = field(default=100.0, metadata={
        "help": "L1 weight of the pix2pix baseline (Isola et al.)", "min": 0.0,
        "max": MAX_WEIGHT})
    smooth_threshold: float = field(default=0.9, metadata={
        "help": "real target is 1.0 while both mean real D scores are below this", "min": 0.0})
    smooth_label: float = field(default=0.9, metadata={
        "help": "real target once a mean real score reaches the threshold, in (0, 1]",
        "min": OPEN_ZERO,
        "max": 1.0})


@dataclass(frozen=True)
class TrainConfig:
    """One training run (saved as ``config.json`` in the run folder)."""

    model: ModelName = field(default="cyclegan-perceptual", metadata={
        "help": "cyclegan-perceptual (the paper), cyclegan (no paired L1, no LPIPS) or pix2pix"})
    epochs: int = field(default=300, metadata={"help": "training epochs", "min": 1})
    max_steps: int = field(default=0, metadata={
        "help": "stop after this many iterations in total (0: no limit)", "min": 0})
    batch_size: int = field(default=4, metadata={"help": "images per iteration and rank", "min": 1})
    lr: float = field(default=3e-4, metadata={
        "help": "Adam learning rate (G and D), in (0, 10]", "min": OPEN_ZERO, "max": MAX_LR})
    beta1: float = field(default=0.9, metadata={"help": "Adam beta1", "min": 0.0, "max": 1.0})
    beta2: float = field(default=0.999, metadata={"help": "Adam beta2", "min": 0.0, "max": 1.0})
    lr_step_epochs: int = field(default=100, metadata={
        "help": "StepLR: multiply the learning rates by --lr-gamma every this many epochs",
        "min": 1})
    lr_gamma: float = field(default=0.5, metadata={
        "help": "StepLR factor, in (0, 1]", "min": OPEN_ZERO, "max": 1.0})
    crop: int = field(default=256, metadata={"help": "training crop side (pixels)", "min": 8})
    amp: bool = field(default=True, metadata={"help": "mixed precision + GradScaler (CUDA only)"})
    seed: int = field(default=0, metadata={"help": "weights/augmentation seed", "min": 0})
    split_seed: int = field(default=0, metadata={"help": "train/val/test split seed", "min": 0})
    val_fraction: float = field(default=0.1, metadata={"help": "validation share per organ",
                                                        "min": 0.0, "max": 0.9})
    test_fraction: float = field(default=0.2, metadata={"help": "test share per organ",
                                                         "min": 0.0, "max": 0.9})
    val_images: int = field(default=16, metadata={
        "help": "validation images scored per epoch (L1 of G_H(L) vs H, centre crops)", "min": 0})
    lpips_random_backbone: bool = field(default=False, metadata={
        "help": "LPIPS loss with a random VGG trunk (tests only; labelled LPIPS(random VGG))"})
    net: NetConfig = field(default_factory=NetConfig)
    loss: LossWeights = field(default_factory=LossWeights)

    @property
    def uses_lpips(self) -> bool:
        """Whether this run needs the LPIPS network."""
        return self.model == "cyclegan-perceptual" and self.loss.perceptual > 0

    @property
    def cyclic(self) -> bool:
        """Two generators and two discriminators (both CycleGAN variants)."""
        return self.model != "pix2pix"
