"""Unit tests of ``hw_profiles``."""
