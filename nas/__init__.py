"""bimtdp-nas: neural architecture search over binary multi-task dense predictors (Bi-MTDP)."""

__version__ = "0.1.0"
