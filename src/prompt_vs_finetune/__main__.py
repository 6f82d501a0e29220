"""`python -m prompt_vs_finetune` is `pvf`."""

from .warm import pvf

pvf()
