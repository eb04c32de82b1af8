"""Workloads: prompts, traffic patterns and the embedded default model."""
