"""Runnable experiments from the papers monge grew from (python -m monge.experiments.<name>)."""
