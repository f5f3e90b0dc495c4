"""Scoring recognised pages against their ground truth."""
