"""Weights and concept adapters on the Hugging Face Hub: downloads with progress, adapters
resolved by Hub id, and publishing an adapter with its model card.
"""
