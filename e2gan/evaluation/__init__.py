"""Judging image makers: paired and distribution metrics on held-out pairs (`heldout`), CLIP
scores, and a generator's parameters, MACs and latency (`profiling`).
"""
