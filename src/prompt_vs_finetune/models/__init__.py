"""Models: Hugging Face causal LMs and LoRA, reduced-precision inference."""

from .loading import apply_lora, build_tiny, context_length, count_parameters, load_model

__all__ = ["apply_lora", "build_tiny", "context_length", "count_parameters", "load_model"]
