"""Unit tests of ``edgectl``."""
