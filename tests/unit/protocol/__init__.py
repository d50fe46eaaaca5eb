"""Unit tests of ``protocol``."""
