"""Choosing data: which pairs a fine-tune sees (`selection`), which concepts the shared base
learns (`concept_selection`), and the image embedders both cluster with.
"""
