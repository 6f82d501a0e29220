"""Calibrated rank classification: the template, the demos and their order shift a small
model's label probabilities toward some labels whatever the input. The remedies:

- contextual (Zhao et al. 2021): divide by the label distribution after content-free inputs
  ("N/A", "", "[MASK]") in the same prompt, renormalised.
- pmi (Holtzman et al. 2021): subtract the log-likelihood after the "domain premise" alone
  (the template's words before the answer, e.g. "\\nIntent:").
Both divide out each label's prior, its length included: no length normalisation on top.
"""

import torch


def label_distribution(logprob: torch.Tensor) -> torch.Tensor:
    """Log-probabilities over the label set from summed log-likelihoods [n, labels]."""
    return torch.log_softmax(logprob.double(), dim=-1)


def contextual(logprob: torch.Tensor, content_free: torch.Tensor) -> torch.Tensor:
    """`content_free`: summed log-likelihoods [content-free inputs, labels]."""
    p_cf = label_distribution(content_free).exp().mean(0)
    return torch.log_softmax(label_distribution(logprob) - p_cf.log(), dim=-1)


def pmi(logprob: torch.Tensor, premise: torch.Tensor) -> torch.Tensor:
    """`premise`: summed log-likelihoods [1, labels]."""
    return torch.log_softmax(logprob.double() - premise.double(), dim=-1)
