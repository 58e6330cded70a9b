"""Shipped hardware profiles (TOML); read through ddla_neuro.deploy.profiles."""
