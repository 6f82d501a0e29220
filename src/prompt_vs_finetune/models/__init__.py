"""Models: Hugging Face causal LMs (Hub, local, the offline `tiny`, a shipped GGUF) and LoRA,
reduced-precision inference, and hosted chat-model clients."""

from .loading import apply_lora, build_tiny, context_length, count_parameters, load_model

__all__ = ["apply_lora", "build_tiny", "context_length", "count_parameters", "load_model"]
