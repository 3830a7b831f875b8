"""Benchmarks: synchronised timings of every backend and precision (see run_all.sh)."""
