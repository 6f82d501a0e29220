"""Tracking: one MLflow run per job (its name, params, tags, files and outcome), secrets kept
out, where a result came from, sweeps' and studies' parent runs, and every key a run logs."""
