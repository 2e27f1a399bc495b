"""Evaluation: per-band reconstruction metrics, figures and reports."""
