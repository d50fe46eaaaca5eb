"""Unit tests of ``model_store``."""
