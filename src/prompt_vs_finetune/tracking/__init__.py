"""Tracking: one MLflow run per job (config, tags, status), secrets kept out, the files a
run leaves, what it cost, the list of keys it logs, and the sweep summary."""
