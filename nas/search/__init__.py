"""The search: a study's configuration, its trials (propose → begin → measure → record) run by the
local loop, ``bimtdp worker`` or Ray Tune, early stopping, storages, samplers and the tables a study
leaves."""
