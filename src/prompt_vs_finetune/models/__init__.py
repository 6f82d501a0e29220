"""Models: Hugging Face causal LMs (Hub or local) and LoRA, the offline `tiny` and
scaled-down builders, reduced-precision inference, and hosted chat-model clients."""

from .loading import apply_lora, context_length, count_parameters, load_model
from .tiny import build_tiny

__all__ = ["apply_lora", "build_tiny", "context_length", "count_parameters", "load_model"]
