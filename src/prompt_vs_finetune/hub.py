"""Fail fast, with a fix, when the Hugging Face Hub cannot be reached (transformers and
datasets would retry for about a minute, then raise a traceback)."""

import os
import socket
from functools import cache
from urllib.parse import urlparse


def hub_offline_flag() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}


@cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the Hub's host resolves and accepts a TCP connection."""
    if hub_offline_flag():
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or ""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False
