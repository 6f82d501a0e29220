"""Calibrated rank classification: the standard remedies for prompting's instability with
GPT-2-class models, where the template, the demos and their order shift the label
probabilities toward some labels whatever the input.

- contextual (Zhao et al. 2021, "Calibrate Before Use"): the label distribution after
  content-free inputs ("N/A", "", "[MASK]") in the same prompt, demos included, estimates that
  bias; each label's probability is divided by it (diag(p_cf)^-1) and renormalised.
- pmi (Holtzman et al. 2021, domain-conditional PMI): each label's log-likelihood less its
  log-likelihood after the template's words that precede the answer alone (the "domain
  premise", e.g. "\\nIntent:").

Both work on the labels' summed log-likelihoods: the estimate divides out each label's prior,
its length included, so no length normalisation applies on top.
"""

import torch


def label_distribution(logprob: torch.Tensor) -> torch.Tensor:
    """Log-probabilities over the label set from summed log-likelihoods [n, labels]."""
    return torch.log_softmax(logprob.double(), dim=-1)


def contextual(logprob: torch.Tensor, content_free: torch.Tensor) -> torch.Tensor:
    """log p(label | x) re-weighted by the mean content-free distribution, renormalised.
    `content_free`: summed log-likelihoods [content-free inputs, labels]."""
    p_cf = label_distribution(content_free).exp().mean(0)
    return torch.log_softmax(label_distribution(logprob) - p_cf.log(), dim=-1)


def pmi(logprob: torch.Tensor, premise: torch.Tensor) -> torch.Tensor:
    """log p(label | x) - log p(label | premise), as a distribution over the labels.
    `premise`: summed log-likelihoods [1, labels]."""
    return torch.log_softmax(logprob.double() - premise.double(), dim=-1)
