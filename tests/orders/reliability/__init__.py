"""Reliability tests: ``orders serve`` killed under load, and a bounded soak."""
