"""Test support: real endpoints and isolation helpers shared by the suites."""
