"""Rendering results: the terminal summary and the JSON report."""
