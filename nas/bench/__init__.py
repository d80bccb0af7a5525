"""Tabular benchmarks: every architecture of a small space trained once, and searches replayed on it.

``tabulate`` fills a table (one row per architecture: costs, metrics, Δm, Δm at intermediate
steps), ``table`` reads it back with its true Pareto front, and ``replay`` runs samplers against it
with lookups instead of training, so that sampler choices are measured over many seeds in seconds.
"""
