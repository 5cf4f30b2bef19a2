"""Neural network modules of perfdecon (nn.Modules only: no I/O, no argv)."""

from perfdecon.models.aif_net import AIFNet, AIFNetConfig

__all__ = ["AIFNet", "AIFNetConfig"]
