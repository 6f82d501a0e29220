"""The suite's MLflow stores start as copies of one store made once (tests/conftest.py).

MLflow makes a new sqlite store by creating its tables and running its ~50 alembic migrations:
3-9 s on this machine, most of it waiting on the disk, and the suite makes about two hundred.
Where PVF_TEST_MLFLOW_TEMPLATE names such a store, a new store gets its tables by a copy of
it (sqlite's backup API) instead, at the moment MLflow would have migrated it, so a store
still exists only where a job or a test made one. Imported by every Python process of the
suite (conftest.py puts this folder on PYTHONPATH); it patches MLflow when MLflow is imported.
"""

import importlib.abc
import importlib.util
import os
import sys

TARGET = "mlflow.store.db.utils"


def _patch(utils) -> None:
    original = getattr(utils, "_initialize_tables", None)
    if original is None or hasattr(original, "original"):  # another MLflow: its own migration
        return

    def initialize_tables(engine):
        template = os.environ.get("PVF_TEST_MLFLOW_TEMPLATE")
        if not template or engine.url.get_backend_name() != "sqlite":
            return original(engine)
        import sqlite3

        source = sqlite3.connect(template)
        connection = engine.raw_connection()
        try:
            source.backup(connection.driver_connection)
        finally:
            connection.close()
            source.close()

    initialize_tables.original = original
    utils._initialize_tables = initialize_tables


class _Finder(importlib.abc.MetaPathFinder):
    """Patches the module right after its first import."""

    def find_spec(self, name, path=None, target=None):
        if name != TARGET:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            _patch(module)

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    if TARGET in sys.modules:
        _patch(sys.modules[TARGET])
    elif not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


install()
