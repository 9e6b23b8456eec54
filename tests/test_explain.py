"""The "why" view: per-entry contributions add up to the model's cache logits, and the top entries are ranked."""

from __future__ import annotations

import torch

from hf_tip.app.explain import entry_contributions, explain_prediction, top_entries
from hf_tip.models.cache import affinity, cache_logits


def test_contributions_sum_to_the_cache_logits(adapter):
    embeds = torch.nn.functional.normalize(torch.randn(4, 16), dim=-1)
    alpha, beta = adapter.config.alpha, adapter.config.beta
    contributions = entry_contributions(embeds, adapter.cache_keys, alpha, beta)  # [B,NK]
    by_class = torch.zeros(4, adapter.num_classes).index_add(1, adapter.cache_labels, contributions)
    expected = alpha * cache_logits(affinity(embeds, adapter.cache_keys), adapter.cache_labels, 3, beta)
    torch.testing.assert_close(by_class, expected)
    logits = adapter(image_embeds=embeds).logits
    torch.testing.assert_close(logits - adapter.zero_shot_logits(embeds), by_class, atol=1e-5, rtol=1e-5)


def test_explain_prediction_names_winner_and_runner_up(adapter):
    embed = torch.nn.functional.normalize(torch.randn(16), dim=-1)
    logits = adapter(image_embeds=embed[None]).logits[0]
    evidence = explain_prediction(logits, embed, adapter.cache_keys, adapter.cache_labels, 1.5, 4.0, top_n=1)
    assert [e.class_index for e in evidence] == torch.argsort(logits, descending=True)[:2].tolist()
    for item in evidence:
        assert len(item.entries) == 1 and adapter.cache_labels[item.entries[0]] == item.class_index
        members = (adapter.cache_labels == item.class_index).nonzero().flatten()
        contributions = entry_contributions(embed[None], adapter.cache_keys, 1.5, 4.0)[0]
        assert item.weights[0] == contributions[members].max().item()
        assert abs(item.cache_total - contributions[members].sum().item()) < 1e-6


def test_top_entries_ranks_and_truncates():
    contributions = torch.tensor([0.1, 0.9, 0.5, 0.7, 0.2])
    labels = torch.tensor([0, 1, 1, 0, 1])
    indices, weights = top_entries(contributions, labels, 1, top_n=2)
    assert indices.tolist() == [1, 2] and weights.tolist() == [0.8999999761581421, 0.5]
    assert top_entries(contributions, labels, 2)[0].numel() == 0
