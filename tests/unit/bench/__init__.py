"""Unit tests of bench/ (the runner that keeps the benchmarks from rotting)."""
