"""Benchmarks: each runs with one command and compares against a baseline in the same run."""
