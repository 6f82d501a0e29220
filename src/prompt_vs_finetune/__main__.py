"""`python -m prompt_vs_finetune` is `pvf`."""

from .cli import main

main()
