"""Benchmarks: speed (bench.run, bench.breakdown, bench.serving_levers), quality
(bench.quality, bench.recommend_quality) and compression (bench.compression).

Importing tfapp first sets KERAS_BACKEND and quiets TensorFlow before any benchmark
module imports keras."""
import tfapp  # noqa: F401
