"""Tracking: a job's MLflow run (secrets kept out, provenance), its sweep or study, its keys."""
