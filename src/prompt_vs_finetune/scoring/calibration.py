"""Calibrated rank classification (conf/scorer/default.yaml): contextual (Zhao et al. 2021)
and domain-conditional PMI (Holtzman et al. 2021). Both divide out each label's prior, its
length included: no length normalisation on top."""

import torch


def contextual(logprob: torch.Tensor, content_free: torch.Tensor) -> torch.Tensor:
    """Divided by the mean label distribution after the content-free inputs, renormalised;
    `content_free`: summed log-likelihoods [content-free inputs, labels]."""
    p_cf = torch.log_softmax(content_free.double(), dim=-1).exp().mean(0)
    return torch.log_softmax(torch.log_softmax(logprob.double(), dim=-1) - p_cf.log(), dim=-1)


def pmi(logprob: torch.Tensor, premise: torch.Tensor) -> torch.Tensor:
    """Minus the log-likelihood after the domain premise alone (the template's words before
    the answer); `premise`: summed log-likelihoods [1, labels]."""
    return torch.log_softmax(logprob.double() - premise.double(), dim=-1)
