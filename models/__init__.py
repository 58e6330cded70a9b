"""Shipped trained models (checkpoint, metadata, model card per folder)."""
