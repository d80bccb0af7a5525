"""Shipping searched architectures: export folders, the safe reading of their graphs, and what an
exported network predicts on a user's image."""
