"""Paired datasets: the on-disk format, where source images come from, importers, and the training view."""
