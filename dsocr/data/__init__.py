"""Datasets of pages with ground truth (``manifest.jsonl`` + files), shared by training and evaluation."""
