"""Models: Hugging Face causal LMs and LoRA, reduced-precision inference."""
