"""Batched generation: decoding from config, a cached shared prefix, ragged prompts prefilled."""

import torch
import torch.nn.functional as F
from transformers import DynamicCache, StaticCache

from .logprobs import PrefixCache, common_prefix_length, left_pad, prefill, takes_cache

MIN_SHARED_PREFIX = 16  # tokens; below this a cached prefix saves less than it costs to copy


def generate_kwargs(decoding, tokenizer, stop: tuple[str, ...] = ()) -> dict:
    """`model.generate` arguments for a decoding config; the task's `stop` strings first."""
    sampling, beam = decoding.strategy == "sampling", decoding.strategy == "beam"
    kwargs = {"max_new_tokens": int(decoding.max_new_tokens), "do_sample": sampling,
              "num_beams": int(decoding.num_beams) if beam else 1,
              "repetition_penalty": float(decoding.repetition_penalty),
              "no_repeat_ngram_size": int(decoding.no_repeat_ngram_size),
              "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    if beam:
        kwargs.update(length_penalty=float(decoding.length_penalty), early_stopping=True)
    if sampling:
        kwargs.update(temperature=float(decoding.temperature), top_k=int(decoding.top_k),
                      top_p=float(decoding.top_p))
    if stops := [s for s in (*stop, *(decoding.stop or ())) if s]:
        kwargs.update(stop_strings=stops, tokenizer=tokenizer)
    return kwargs


@torch.no_grad()
def generate(model, prompts: list[list[int]], kwargs: dict,
             prefix_cache: PrefixCache | None = None) -> list[list[int]]:
    """New tokens per prompt, cut at end-of-text; `prefix_cache` (no beams): the shared prefix."""
    device = next(model.parameters()).device
    shared = common_prefix_length(prompts) if prefix_cache is not None else 0
    cache = None
    if shared < MIN_SHARED_PREFIX or kwargs["num_beams"] > 1:
        input_ids, attention = left_pad(prompts, kwargs["pad_token_id"])
        if kwargs["num_beams"] == 1 and ragged(model, prompts):
            cache = ragged_prefill(model, prompts, device, kwargs["max_new_tokens"])
    else:
        own_ids, own_mask = left_pad([p[shared:] for p in prompts], kwargs["pad_token_id"])
        prefix = torch.tensor(prompts[0][:shared]).expand(len(prompts), -1)
        input_ids = torch.cat([prefix, own_ids], dim=1)
        attention = torch.cat([torch.ones_like(prefix), own_mask], dim=1)
        base, _ = prefix_cache.get(model, prompts[0][:shared])
        cache = batch_cache(model, [base] * len(prompts),
                            shared + own_ids.size(1) + kwargs["max_new_tokens"])
    # with a StaticCache generate would compile per batch shape on GPUs: minutes, not decoding
    extra = {} if cache is None else {"cache": cache, "disable_compile": True}
    output = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                            **kwargs, **extra)
    eos = kwargs["eos_token_id"]
    return [tokens[: tokens.index(eos)] if eos in tokens else tokens
            for tokens in output[:, input_ids.size(1):].tolist()]


def ragged(model, prompts: list[list[int]]) -> bool:
    """Prefill prompts of different lengths one by one? A padding mask costs the fused kernel."""
    lengths = {len(p) for p in prompts}
    return len(lengths) > 1 and min(lengths) > 1 and takes_cache(model)


def ragged_prefill(model, prompts: list[list[int]], device, new_tokens: int):
    """Every prompt but its last token run alone, into one batch cache with `new_tokens` room."""
    caches = [prefill(model, torch.tensor([p[:-1]], device=device)) for p in prompts]
    return batch_cache(model, caches, max(len(p) for p in prompts) + new_tokens)


def batch_cache(model, caches: list, length: int):
    """One preallocated cache of `length` positions from batch-1 caches, left-padded to the
    longest (a DynamicCache copies every layer each step: 39% of decoding on 2 CPUs, measured)."""
    width = max(c.layers[0].keys.size(2) for c in caches)
    by_layer = list(zip(*(c.layers for c in caches), strict=True))  # [layer][row]
    try:
        cache = StaticCache(config=model.config, max_cache_len=length)
    except (TypeError, ValueError):  # a config that builds none
        cache = None
    # not every layer a key/value one (linear attention): a DynamicCache
    if cache is None or not all(hasattr(layer, "cumulative_length") for layer in cache.layers):
        return DynamicCache(ddp_cache_data=[
            tuple(torch.cat([F.pad(t, (0, 0, width - t.size(2), 0)) for t in tensors])
                  for tensors in ([s.keys for s in rows], [s.values for s in rows]))
            for rows in by_layer])
    for layer, rows in zip(cache.layers, by_layer, strict=True):
        for row, source in enumerate(rows):
            if not layer.is_initialized:
                layer.lazy_initialization(source.keys.expand(len(rows), -1, -1, -1), source.values)
            pad = width - source.keys.size(2)
            layer.keys[row, :, pad:width] = source.keys[0]
            layer.values[row, :, pad:width] = source.values[0]
        layer.cumulative_length.fill_(width)
    return cache


def cut_at_stop(text: str, stops: tuple[str, ...]) -> str:
    """The answer ends before the first stop string (generate stops *after* producing it)."""
    for stop in stops:
        text = text.split(stop, 1)[0]
    return text.strip()
