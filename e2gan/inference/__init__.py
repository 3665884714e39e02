"""Editing photos with a base and its adapters: `EditPipeline`, the one inference entry point."""
