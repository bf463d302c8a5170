"""``scripts/bench``: end-to-end benchmarks of the sidecar, each figure a ratio against its
baseline measured side by side in the same run (see ``scripts/bench --help``)."""
