"""Datasets: each loader returns a manifest DataFrame (one row per recording)."""
