"""Integration tests of the Clever sandbox over real HTTP on loopback."""
