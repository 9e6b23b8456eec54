"""Fidelity of the method heads (`hf_tip/head_*.py`): each one's logits against an independent computation of its
paper's formula (loops / numpy, written here), GDA's head against a direct LDA computation, TIP-X at γ = 0 against
Tip-Adapter, and each search against the reference's loop on planted problems."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hf_tip.models import head_clip_adapter, head_gda, head_linear_probe, head_tip_x
from hf_tip.models.cache import normalize, tip_logits


def _unit_np(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _softmax_np(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def problem(seed: int, n: int = 40, classes: int = 4, shots: int = 3, dim: int = 8, noise: float = 1.0):
    """Validation features, text weights and cache keys near shared class centres (float64, normalised)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g, dtype=torch.float64)
    labels = torch.randint(0, classes, (n,), generator=g)
    embeds = normalize(centres[labels] + noise * torch.randn(n, dim, generator=g, dtype=torch.float64))
    cache_labels = torch.arange(classes).repeat_interleave(shots)
    keys = normalize(
        centres[cache_labels] + noise * torch.randn(len(cache_labels), dim, generator=g, dtype=torch.float64)
    )
    weights = normalize(centres + 2 * noise * torch.randn(classes, dim, generator=g, dtype=torch.float64))
    return embeds, labels, weights, keys, cache_labels


# ---------------------------------------------------------------- TIP-X


def tip_x_numpy(f, w, keys, key_labels, scale, alpha, beta, gamma, temperature, ranges_from=None):
    """SuS-X's TIP-X logits in numpy loops: KL over softmax(·Wᵀ/τ), `scale_` of M onto the affinities' range."""
    f, w, keys = f.numpy(), w.numpy(), keys.numpy()
    values = np.eye(w.shape[0])[key_labels.numpy()]  # [NK,C]
    aff = f @ keys.T
    s, big_s = _softmax_np(f @ w.T / temperature), _softmax_np(keys @ w.T / temperature)
    kl = np.zeros((f.shape[0], keys.shape[0]))
    for i in range(f.shape[0]):
        for j in range(keys.shape[0]):
            kl[i, j] = sum(s[i, c] * (math.log(s[i, c]) - math.log(big_s[j, c])) for c in range(w.shape[0]))
    ref_kl, ref_aff = ranges_from if ranges_from is not None else (kl, aff)
    scaled = (kl - ref_kl.min()) / (ref_kl.max() - ref_kl.min()) * (ref_aff.max() - ref_aff.min()) + ref_aff.min()
    logits = scale * f @ w.T + gamma * (-scaled) @ values + alpha * np.exp(-(beta - beta * aff)) @ values
    return logits, kl, aff


def test_tip_x_logits_equal_the_reference_formula():
    embeds, _, weights, keys, cache_labels = problem(0, n=9)
    ranges = head_tip_x.validation_ranges(embeds, weights, keys)
    ours = head_tip_x.tip_x_logits(embeds, weights, keys, cache_labels, 30.0, 1.7, 5.5, 2.3, ranges)
    expected, kl, aff = tip_x_numpy(embeds, weights, keys, cache_labels, 30.0, 1.7, 5.5, 2.3, 0.5)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ranges.numpy(), [kl.min(), kl.max(), aff.min(), aff.max()], rtol=1e-12)


def test_tip_x_uses_ranges_measured_on_validation_not_the_batch():
    """One image's logits do not depend on its batch: ψ's ranges come from the validation set, stored."""
    embeds, _, weights, keys, cache_labels = problem(1, n=12)
    ranges = head_tip_x.validation_ranges(embeds, weights, keys)
    whole = head_tip_x.tip_x_logits(embeds, weights, keys, cache_labels, 30.0, 1.0, 3.0, 2.0, ranges)
    alone = head_tip_x.tip_x_logits(embeds[:1], weights, keys, cache_labels, 30.0, 1.0, 3.0, 2.0, ranges)
    torch.testing.assert_close(alone, whole[:1], rtol=1e-12, atol=1e-12)
    _, kl, aff = tip_x_numpy(embeds, weights, keys, cache_labels, 30.0, 1.0, 3.0, 2.0, 0.5)
    expected, _, _ = tip_x_numpy(embeds[:1], weights, keys, cache_labels, 30.0, 1.0, 3.0, 2.0, 0.5, (kl, aff))
    np.testing.assert_allclose(alone.numpy(), expected, rtol=1e-10, atol=1e-10)


def test_tip_x_with_gamma_zero_is_tip_adapter_exactly():
    embeds, _, weights, keys, cache_labels = problem(2)
    embeds, weights, keys = embeds.float(), weights.float(), keys.float()
    ranges = head_tip_x.validation_ranges(embeds, weights, keys)
    for alpha in (0.0, 1.3):
        ours = head_tip_x.tip_x_logits(embeds, weights, keys, cache_labels, 100.0, alpha, 4.0, 0.0, ranges)
        assert torch.equal(ours, tip_logits(embeds, weights, keys, cache_labels, 100.0, alpha, 4.0))


def test_tip_x_grid_is_the_references():
    alphas, betas, gammas = head_tip_x.search_grid()
    assert (len(alphas), len(betas), len(gammas)) == (20, 200, 50)
    assert alphas[0] == gammas[0] == 0.1 and betas[0] == 1.0
    assert betas[1] == pytest.approx(1 + 49 / 200) and gammas[-1] == pytest.approx(49 * 29.9 / 50 + 0.1)
    assert max(alphas) < 50 and max(betas) < 50 and max(gammas) < 30


def reference_tip_x_search(embeds, labels, weights, keys, cache_labels, scale, search_scale, search_step):
    """tipx.py's `hparam_search` loop (α, β, γ nested; first strict improvement), in numpy."""
    alphas, betas, gammas = head_tip_x.search_grid(search_scale, search_step)
    _, kl, aff = tip_x_numpy(embeds, weights, keys, cache_labels, scale, 0.0, 1.0, 0.0, 0.5)
    values = np.eye(weights.shape[0])[cache_labels.numpy()]
    scaled = (kl - kl.min()) / (kl.max() - kl.min()) * (aff.max() - aff.min()) + aff.min()
    clip, kl_logits = scale * embeds.numpy() @ weights.numpy().T, (-scaled) @ values
    best, best_acc = None, -1.0
    for alpha in alphas:
        for beta in betas:
            cache = np.exp(-(beta - beta * aff)) @ values
            for gamma in gammas:
                acc = ((clip + kl_logits * gamma + cache * alpha).argmax(-1) == labels.numpy()).mean()
                if acc > best_acc:
                    best, best_acc = (alpha, beta, gamma), acc
    return best, best_acc


@pytest.mark.parametrize("seed", range(4))
def test_tip_x_search_matches_the_reference_loop(seed):
    embeds, labels, weights, keys, cache_labels = problem(seed + 10, noise=1.2)
    scale, step = (9.0, 6.0, 5.0), (7, 5, 6)
    found = head_tip_x.grid_search(
        embeds, labels, weights, keys, cache_labels, 10.0, 0.5, scale, step, max_elements=97
    )
    (alpha, beta, gamma), accuracy = reference_tip_x_search(
        embeds, labels, weights, keys, cache_labels, 10.0, scale, step
    )
    assert (found["alpha"], found["beta"], found["gamma"]) == (alpha, beta, gamma)
    assert found["accuracy"] == pytest.approx(accuracy)
    logits = head_tip_x.tip_x_logits(embeds, weights, keys, cache_labels, 10.0, alpha, beta, gamma, found["ranges"])
    assert (logits.argmax(-1) == labels).double().mean().item() == pytest.approx(found["accuracy"])


def test_tip_x_search_finds_a_planted_optimum():
    """Misleading text weights (classes rotated), a perfect cache: only a strong cache term classifies everything,
    and the first grid point that does is chosen."""
    embeds, labels, weights, keys, cache_labels = problem(5, noise=0.2)
    wrong = weights.roll(1, dims=0)
    scale, step = (9.0, 20.0, 5.0), (4, 8, 3)
    found = head_tip_x.grid_search(embeds, labels, wrong, keys, cache_labels, 10.0, 0.5, scale, step)
    expected, accuracy = reference_tip_x_search(embeds, labels, wrong, keys, cache_labels, 10.0, scale, step)
    assert accuracy == 1.0 and found["accuracy"] == 1.0
    assert (found["alpha"], found["beta"], found["gamma"]) == expected and found["alpha"] > 0.1


def test_tip_x_search_rejects_bad_inputs_naming_them():
    embeds, labels, weights, keys, cache_labels = problem(6)
    with pytest.raises(ValueError, match="cache_keys"):
        head_tip_x.grid_search(embeds, labels, weights, keys[:, :3], cache_labels, 10.0)
    with pytest.raises(ValueError, match="labels"):
        head_tip_x.grid_search(embeds, labels + 10, weights, keys, cache_labels, 10.0)
    with pytest.raises(ValueError, match="image_embeds"):
        head_tip_x.grid_search(embeds * float("nan"), labels, weights, keys, cache_labels, 10.0)
    with pytest.raises(ValueError, match="search_step"):
        head_tip_x.search_grid((50.0, 50.0, 30.0), (200, 20))


# ---------------------------------------------------------------- CLIP-Adapter


def test_clip_adapter_logits_equal_the_reference_on_raw_features():
    """The reference adapts the raw encoder output, then normalises; the head adapts the normalised feature. The
    bias-free ReLU adapter is positively homogeneous, so both give the same logits."""
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(6, 16, generator=g, dtype=torch.float64) * torch.tensor([[0.3], [1], [4], [9], [0.01], [2]])
    weights = normalize(torch.randn(5, 16, generator=g, dtype=torch.float64))
    fc1, fc2 = head_clip_adapter.init_adapter_weights(16, 4, generator=g, dtype=torch.float64)
    f, w1, w2 = raw.numpy(), fc1.numpy(), fc2.numpy()
    x = np.maximum(np.maximum(f @ w1.T, 0) @ w2.T, 0)  # clip_adapter.py lines 58-63
    blended = 0.2 * x + 0.8 * f  # line 105
    expected = 14.3 * _unit_np(blended) @ _unit_np(weights.numpy()).T  # lines 109-113
    ours = head_clip_adapter.clip_adapter_logits(normalize(raw), weights, 14.3, fc1, fc2, 0.2)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert fc1.shape == (4, 16) and fc2.shape == (16, 4)
    assert fc1.abs().max() <= 1 / 4 and fc2.abs().max() <= 1 / 2  # nn.Linear's U(±1/√fan_in)
    assert torch.equal(
        head_clip_adapter.clip_adapter_logits(normalize(raw), weights, 14.3, fc1, fc2, 0.0),
        14.3 * (normalize(raw) @ weights.T),
    )


def test_clip_adapter_reference_schedule_replays_dassl():
    """Constant warm-up epoch at 1e-5, then torch's CosineAnnealingLR(T_max=200) restarted, stepped once per epoch."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=2e-3, momentum=0.9, weight_decay=5e-4)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=200)
    lrs = [1e-5]
    for _ in range(1, 200):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        cosine.step()
    for epoch, lr in enumerate(lrs):
        assert head_clip_adapter.reference_learning_rate(epoch) == pytest.approx(lr, rel=1e-9, abs=1e-15)
    with pytest.raises(ValueError, match="reduction"):
        head_clip_adapter.adapter_shapes(16, 0)


# ---------------------------------------------------------------- GDA


def lda_numpy(samples: np.ndarray, labels: np.ndarray, classes: int):
    """Direct LDA with the reference's shrunk covariance: means, pooled scatter by loops, Σ solved, uniform prior."""
    n, d = samples.shape
    means = np.stack([samples[labels == k].mean(0) for k in range(classes)])
    scatter = np.zeros((d, d))
    for x, y in zip(samples, labels, strict=True):
        scatter += np.outer(x - means[y], x - means[y])
    cov = scatter / (n - 1)  # the unbiased covariance of class-centred samples (their grand mean is 0)
    sigma = ((n - 1) * cov + np.trace(cov) * np.eye(d)) / d  # main_few_shots.py line 60: Σ⁻¹ = D · pinv(...)
    weight = np.stack([np.linalg.solve(sigma, means[k]) for k in range(classes)])  # w_k = Σ⁻¹ μ_k
    bias = np.array([math.log(1 / classes) - 0.5 * means[k] @ weight[k] for k in range(classes)])
    return weight, bias


def test_gda_head_equals_a_direct_lda_computation():
    g = torch.Generator().manual_seed(3)
    views = torch.randn(3, 10, 6, generator=g, dtype=torch.float64) * 2 + 0.5  # raw, unnormalised [V,N,D]
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    weight, bias = head_gda.fit_gda(views, labels, 4)
    samples = _unit_np(views.numpy()).reshape(-1, 6)  # every view normalised on its own (lines 48-52)
    expected_w, expected_b = lda_numpy(samples, np.tile(labels.numpy(), 3), 4)
    np.testing.assert_allclose(weight.numpy(), expected_w, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(bias.numpy(), expected_b, rtol=1e-9, atol=1e-9)


def test_gda_logits_and_alpha_zero():
    embeds, _, weights, _, _ = problem(4)
    head_w, head_b = torch.randn(4, 8, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    ours = head_gda.gda_logits(embeds, weights, 20.0, head_w, head_b, 0.3)
    expected = 20.0 * embeds.numpy() @ weights.numpy().T + 0.3 * (embeds.numpy() @ head_w.numpy().T + head_b.numpy())
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert torch.equal(head_gda.gda_logits(embeds, weights, 20.0, head_w, head_b, 0.0), 20.0 * (embeds @ weights.T))


def test_gda_search_finds_a_planted_optimum():
    """Rotated text weights, a GDA head fitted on the right classes: the first α where GDA dominates wins, as the
    reference's loop picks it."""
    embeds, labels, weights, _, _ = problem(7, n=60, noise=0.3)
    g = torch.Generator().manual_seed(1)
    views = embeds[None] + 0.05 * torch.randn(4, 60, 8, generator=g, dtype=torch.float64)
    head = head_gda.fit_gda(views, labels, 4)
    wrong = weights.roll(1, dims=0)
    found = head_gda.search_alpha(embeds, labels, wrong, 10.0, *head)
    best, best_acc = 0.1, 0.0  # main_few_shots.py lines 68-77
    for alpha in head_gda.ALPHA_GRID:
        acc = (head_gda.gda_logits(embeds, wrong, 10.0, *head, alpha).argmax(-1) == labels).double().mean().item()
        if acc > best_acc:
            best, best_acc = alpha, acc
    assert (found["alpha"], found["accuracy"]) == (best, best_acc)
    assert best >= 1.0 and best_acc > 0.9


def test_gda_rejects_bad_inputs_naming_them():
    views = torch.randn(2, 4, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"class\(es\) \[2\]"):
        head_gda.fit_gda(views, torch.tensor([0, 1, 0, 1]), 3)
    with pytest.raises(ValueError, match="labels"):
        head_gda.fit_gda(views, torch.tensor([0, 1, 2]), 3)
    with pytest.raises(ValueError, match="view_features"):
        head_gda.fit_gda(views[0], torch.tensor([0, 1, 0, 1]), 2)
    with pytest.raises(ValueError, match="alpha_grid"):
        head_gda.search_alpha(
            views[0], torch.tensor([0, 1, 0, 1]), views[0, :2], 1.0, views[0, :2], torch.zeros(2), []
        )


# ---------------------------------------------------------------- linear probe


def _separable_problem(seed: int, n: int = 30, classes: int = 3, dim: int = 5, noise: float = 0.8):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g, dtype=torch.float64)
    labels = torch.arange(classes).repeat(n // classes)
    return normalize(centres[labels] + noise * torch.randn(len(labels), dim, generator=g, dtype=torch.float64)), labels


@pytest.mark.parametrize("c", [0.01, 1.0, 100.0])
def test_linear_probe_equals_sklearn_logistic_regression(c):
    sklearn = pytest.importorskip("sklearn.linear_model")
    features, labels = _separable_problem(0)
    weight, bias = head_linear_probe.fit_logistic_regression(features, labels, 3, c)
    oracle = sklearn.LogisticRegression(C=c, tol=1e-12, max_iter=10_000).fit(features.numpy(), labels.numpy())
    probs = torch.softmax(head_linear_probe.linear_probe_logits(features, weight, bias), -1)
    np.testing.assert_allclose(probs.numpy(), oracle.predict_proba(features.numpy()), atol=1e-6)
    np.testing.assert_allclose(weight.numpy(), oracle.coef_, atol=1e-5)
    assert abs(bias.mean().item()) < 1e-12  # centred: softmax ignores a shared shift


def test_linear_probe_search_matches_a_sklearn_sweep():
    sklearn = pytest.importorskip("sklearn.linear_model")
    features, labels = _separable_problem(1, n=24, noise=1.5)
    val, val_labels = _separable_problem(1, n=300, noise=1.5)
    grid = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]
    found = head_linear_probe.search_c(features, labels, val, val_labels, 3, grid)
    accuracies = [
        (sklearn.LogisticRegression(C=c, tol=1e-12, max_iter=10_000).fit(features.numpy(), labels.numpy())
         .predict(val.numpy()) == val_labels.numpy()).mean()
        for c in grid
    ]  # fmt: skip
    assert found["c"] == grid[int(np.argmax(accuracies))] and found["accuracy"] == pytest.approx(max(accuracies))
    assert len(set(accuracies)) > 1  # the sweep is not degenerate


def test_linear_probe_rejects_bad_inputs_naming_them():
    features, labels = _separable_problem(2)
    with pytest.raises(ValueError, match="c_grid"):
        head_linear_probe.search_c(features, labels, features, labels, 3, [0.0, 1.0])
    with pytest.raises(ValueError, match="train_labels"):
        head_linear_probe.search_c(features, labels[:-1], features, labels, 3)
    with pytest.raises(ValueError, match="image_embeds"):
        head_linear_probe.search_c(features, labels, features[:, :2], labels, 3)


def test_views_flatten_view_major_each_normalised():
    from hf_tip.models.head_inputs import flatten_views

    views = torch.randn(3, 4, 5) * 7
    samples, labels = flatten_views(views, torch.tensor([2, 0, 1, 2]))
    assert torch.equal(labels, torch.tensor([2, 0, 1, 2] * 3))
    torch.testing.assert_close(samples[4 * 2 + 1], views[2, 1] / views[2, 1].norm())  # view 2 of image 1
    with pytest.raises(ValueError, match="view_features"):
        flatten_views(views[0], torch.tensor([2, 0, 1, 2]))
