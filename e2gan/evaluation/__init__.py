"""Judging image makers: paired and distribution metrics on held-out pairs (`heldout`), a
generator's parameters, MACs and latency (`profiling`), and pictures of results (`pictures`).
"""
