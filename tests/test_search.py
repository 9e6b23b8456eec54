"""The vectorised α/β search picks exactly what the paper's double loop picks: random, tied and planted cases."""

from __future__ import annotations

import math

import pytest
import torch

from hf_tip.models.cache import normalize, tip_logits
from hf_tip.models.search import grid_search, search_grid
from hf_tip.testing_utils import reference_grid_search

SCALE, STEP = (7.0, 3.0), (12, 6)


def random_problem(seed: int, n: int = 60, classes: int = 4, shots: int = 3, dim: int = 8, noise: float = 1.0):
    """Validation features near class centres, cache keys near the same centres, text weights near them too."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g)
    labels = torch.randint(0, classes, (n,), generator=g)
    embeds = normalize(centres[labels] + noise * torch.randn(n, dim, generator=g))
    cache_labels = torch.arange(classes).repeat_interleave(shots)
    keys = normalize(centres[cache_labels] + noise * torch.randn(len(cache_labels), dim, generator=g))
    weights = normalize(centres + 2 * noise * torch.randn(classes, dim, generator=g))
    return embeds, labels, weights, keys, cache_labels


def both(problem, scale=SCALE, step=STEP, **kwargs):
    args = (*problem, 100.0)
    return grid_search(*args, scale, step, **kwargs), reference_grid_search(*args, scale, step)


def test_grid_is_the_papers():
    betas, alphas = search_grid((7.0, 3.0), (200, 20))
    assert len(betas) == 200 and len(alphas) == 20
    assert betas[0] == alphas[0] == 0.1
    assert betas[1] == pytest.approx(0.1 + 6.9 / 200) and alphas[-1] == pytest.approx(19 * 2.9 / 20 + 0.1)
    assert max(betas) < 7.0 and max(alphas) < 3.0  # the upper end is never reached


@pytest.mark.parametrize("seed", range(6))
def test_matches_reference_on_random_problems(seed):
    fast, ref = both(random_problem(seed))
    assert (fast["alpha"], fast["beta"]) == (ref["alpha"], ref["beta"])
    assert fast["accuracy"] == pytest.approx(ref["accuracy"], abs=1e-6)  # the loop averages in float32


@pytest.mark.parametrize("max_elements", [1, 37, 500, 2**25])
def test_chunking_does_not_change_the_result(max_elements):
    problem = random_problem(11, n=97)
    unchunked = grid_search(*problem, 100.0, SCALE, STEP)
    assert grid_search(*problem, 100.0, SCALE, STEP, max_elements=max_elements) == unchunked


def test_tie_goes_to_the_first_beta_alpha_pair():
    """Perfectly separated validation features: every (β, α) scores 100 %, so the first pair must win."""
    eye = torch.eye(3)
    embeds, labels = eye.repeat(4, 1), torch.arange(3).repeat(4)
    problem = (embeds, labels, eye, eye, torch.arange(3))
    fast, ref = both(problem)
    assert fast == {"alpha": 0.1, "beta": 0.1, "accuracy": 1.0}
    assert (ref["alpha"], ref["beta"], ref["accuracy"]) == (0.1, 0.1, 1.0)


def accuracy_table(problem, logit_scale, scale, step) -> torch.Tensor:
    """Accuracy of every grid cell [nβ, nα], one `tip_logits` call per cell (independent of both searches)."""
    embeds, labels, weights, keys, cache_labels = problem
    betas, alphas = search_grid(scale, step)
    table = torch.zeros(len(betas), len(alphas), dtype=torch.float64)
    for i, beta in enumerate(betas):
        for j, alpha in enumerate(alphas):
            logits = tip_logits(embeds, weights, keys, cache_labels, logit_scale, alpha, beta)
            table[i, j] = (logits.argmax(-1) == labels).double().mean()
    return table


def planted_problem(beta: float, alpha: float, width: float, logit_scale: float = 10.0):
    """Four validation points of two classes that are all right exactly when `α·D1(β)` and `α·D2(β)` lie within
    `±width` (relative) of their values at the planted `(β, α)`.

    Keys are e0 (class 0) and e1 (class 1); text weights e2 (class 0) and e3 (class 1). A feature with affinities
    (a0, a1) to the keys has the cache logit gap `D(β) = exp(-β(1-a1)) - exp(-β(1-a0))` (class 1 minus class 0), and
    its e2/e3 part sets its zero-shot gap `-m`: a class-1 point is right iff `α·D(β) > m`, a class-0 point iff
    `α·D(β) < m`. Two affinity pairs with differently shaped `D` make two bands that cross only near the plant.
    """
    keys, cache_labels = torch.eye(4)[:2], torch.tensor([0, 1])
    weights = torch.eye(4)[2:]
    feats, labels = [], []
    for a0, a1 in ((0.0, 0.8), (0.1, 0.4)):
        gap = math.exp(-beta * (1 - a1)) - math.exp(-beta * (1 - a0))
        r = math.sqrt(1 - a0**2 - a1**2)
        for label, margin in ((1, alpha * gap * (1 - width)), (0, alpha * gap * (1 + width))):
            theta = math.pi / 4 + math.asin(-margin / (logit_scale * r * math.sqrt(2)))
            feats.append(torch.tensor([a0, a1, r * math.cos(theta), r * math.sin(theta)]))
            labels.append(label)
    return torch.stack(feats).float(), torch.tensor(labels), weights, keys, cache_labels


def test_planted_optimum_at_a_known_grid_point():
    scale, step = (7.0, 3.0), (20, 10)
    betas, alphas = search_grid(scale, step)
    target = (betas[7], alphas[4])
    problem = planted_problem(*target, width=0.02)
    table = accuracy_table(problem, 10.0, scale, step)
    assert table[7, 4] == 1.0 and int((table == 1.0).sum()) == 1  # the plant is the unique perfect cell
    fast = grid_search(*problem, 10.0, scale, step)
    ref = reference_grid_search(*problem, 10.0, scale, step)
    assert (fast["beta"], fast["alpha"], fast["accuracy"]) == (*target, 1.0)
    assert (ref["beta"], ref["alpha"], ref["accuracy"]) == (*target, 1.0)


def test_planted_tie_inside_the_grid_goes_to_the_first_beta_then_alpha():
    """A wide plant: several cells (not the first of the grid) score 100 %; both searches take the first of them
    in (β, α) order."""
    scale, step = (7.0, 3.0), (20, 10)
    betas, alphas = search_grid(scale, step)
    problem = planted_problem(betas[9], alphas[5], width=0.3)
    table = accuracy_table(problem, 10.0, scale, step)
    perfect = (table == 1.0).nonzero().tolist()
    assert len(perfect) > 3 and perfect[0] != [0, 0]
    assert len({i for i, _ in perfect}) > 1 and len({j for _, j in perfect}) > 1  # ties across β and across α
    first_beta, first_alpha = perfect[0]  # nonzero() lists cells in row-major, i.e. (β, α), order
    fast = grid_search(*problem, 10.0, scale, step)
    ref = reference_grid_search(*problem, 10.0, scale, step)
    for result in (fast, ref):
        assert (result["beta"], result["alpha"]) == (betas[first_beta], alphas[first_alpha])
    assert grid_search(*problem, 10.0, scale, step, max_elements=3) == fast


def test_random_problems_against_the_table():
    """Both searches return the first maximum of an independently computed accuracy table."""
    problem = random_problem(3, n=40, noise=1.5)
    table = accuracy_table(problem, 100.0, SCALE, (30, 10))
    best = int(torch.argmax(table.flatten()))  # first maximum in row-major order
    betas, alphas = search_grid(SCALE, (30, 10))
    i, j = divmod(best, len(alphas))
    fast, ref = both(problem, step=(30, 10))
    assert (fast["beta"], fast["alpha"]) == (ref["beta"], ref["alpha"]) == (betas[i], alphas[j])
    assert fast["accuracy"] == pytest.approx(table[i, j].item())


def test_search_hyperparameters_writes_the_config(adapter):
    problem = random_problem(5, classes=3, dim=16)
    embeds, labels = problem[0], problem[1]
    result = adapter.search_hyperparameters(embeds, labels, search_scale=SCALE, search_step=STEP)
    ref = reference_grid_search(
        normalize(embeds),
        labels,
        adapter.zero_shot_weights,
        adapter.cache_keys,
        adapter.cache_labels,
        adapter.clip.logit_scale.exp(),
        SCALE,
        STEP,
    )
    assert (result["alpha"], result["beta"]) == (ref["alpha"], ref["beta"])
    assert (adapter.config.alpha, adapter.config.beta) == (result["alpha"], result["beta"])
    logits = adapter(image_embeds=embeds).logits
    assert (logits.argmax(-1) == labels).float().mean().item() == pytest.approx(result["accuracy"])


@pytest.mark.parametrize(
    ("scale", "step", "message"),
    [
        ((0.05, 3.0), (200, 20), "search_scale"),
        ((7.0, 3.0), (0, 20), "search_step"),
        ((7.0, 3.0), (2.5, 3), "search_step"),
    ],
)
def test_a_bad_grid_names_the_argument(adapter, scale, step, message):
    embeds, labels = torch.randn(6, adapter.cache_keys.shape[1]), torch.arange(6) % 3
    with pytest.raises(ValueError, match=message):
        adapter.search_hyperparameters(embeds, labels, search_scale=scale, search_step=step)


@pytest.mark.parametrize(
    ("scale", "step", "message"),
    [
        ((float("inf"), 3.0), (20, 5), r"`search_scale` must be two finite numbers"),
        ((float("nan"), 3.0), (20, 5), r"`search_scale` must be two finite numbers"),
        ((7.0, 3.0, 2.0), (20, 5), r"`search_scale` must hold exactly two values"),
        ((7.0, 3.0), (20, 5, 2), r"`search_step` must hold exactly two values"),
        ((7.0, 3.0), (100_000, 100_000), r"`search_step` \[100000, 100000\] asks for 10,000,000,000"),
    ],
)
def test_a_bad_grid_is_refused_before_the_config_changes(adapter, scale, step, message):
    """`--search_scale inf 3` used to write beta = NaN, a 3-value scale was an unpack error and a 1e5 x 1e5 grid an
    80 GB allocation: each is a `ValueError` naming the argument, and alpha/beta stay as they were."""
    embeds, labels = torch.randn(6, adapter.cache_keys.shape[1]), torch.arange(6) % 3
    before = (adapter.config.alpha, adapter.config.beta)
    with pytest.raises(ValueError, match=message):
        adapter.search_hyperparameters(embeds, labels, search_scale=scale, search_step=step)
    assert (adapter.config.alpha, adapter.config.beta) == before


def test_an_empty_validation_set_is_refused_before_the_config_changes(adapter):
    """It used to return alpha = beta = 0.1 with accuracy 0 and write them into the config."""
    adapter.config.alpha, adapter.config.beta = 1.5, 2.5
    empty = torch.zeros(0, adapter.cache_keys.shape[1])
    with pytest.raises(ValueError, match=r"No validation features .*`image_embeds` is empty"):
        adapter.search_hyperparameters(empty, torch.zeros(0, dtype=torch.long))
    assert (adapter.config.alpha, adapter.config.beta) == (1.5, 2.5)
