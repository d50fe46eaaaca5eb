"""Unit tests of ``controlplane``."""
