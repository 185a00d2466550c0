"""Gradio front door: layout and thin callbacks over ``core``."""
