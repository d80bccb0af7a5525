"""Training one architecture for a budget (fidelity) against the cached FP teacher, and the
trivial prior that a trained network must beat."""
