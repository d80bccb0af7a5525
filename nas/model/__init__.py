"""The network: the genotype (:mod:`~nas.model.arch`), its binary and float building blocks, the
tasks its heads predict, and the builder that turns an architecture into a ``MultiTaskNet``."""
