"""Evaluation of frozen encoders: feature probes."""
