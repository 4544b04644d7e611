"""Unit tests of the Clever sandbox (no I/O)."""
