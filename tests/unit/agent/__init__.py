"""Unit tests of ``agent`` (its simulator included)."""
