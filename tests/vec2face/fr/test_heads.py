"""Margin heads and the (partial-FC) margin classifier."""

from __future__ import annotations

import math

import pytest
import torch

from vec2face.fr import ArcFace, CosFace, MarginClassifier, sample_classes


def test_arcface_margin_on_hand_computed_values():
    cosine = torch.tensor([[0.8, 0.1, -0.2], [0.3, -0.95, 0.5], [0.6, 0.2, 0.9]])
    labels = torch.tensor([0, 1, -1])
    before = cosine.clone()
    out = ArcFace(s=64.0, m=0.5)(cosine, labels)
    # Row 0: theta = acos(0.8); cos(theta + 0.5) = 0.8 cos 0.5 - 0.6 sin 0.5.
    row0 = 0.8 * 0.8775825618903728 - 0.6 * 0.479425538604203
    # Row 1: -0.95 <= cos(pi - 0.5) = -0.8776, so theta + m passes pi: cos - m sin(m).
    row1 = -0.95 - 0.5 * 0.479425538604203
    expected = 64.0 * torch.tensor([[row0, 0.1, -0.2], [0.3, row1, 0.5], [0.6, 0.2, 0.9]])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-4)
    assert math.isclose(row0, math.cos(math.acos(0.8) + 0.5), abs_tol=1e-12)
    assert torch.equal(cosine, before)  # the input is not modified


def test_arcface_threshold_switch_sits_at_cos_pi_minus_m():
    head = ArcFace(s=1.0, m=0.5)
    edge = math.cos(math.pi - 0.5)
    above = head(torch.tensor([[edge + 1e-3, 0.0]]), torch.tensor([0]))[0, 0].item()
    below = head(torch.tensor([[edge - 1e-3, 0.0]]), torch.tensor([0]))[0, 0].item()
    assert math.isclose(above, math.cos(math.acos(edge + 1e-3) + 0.5), abs_tol=1e-5)
    assert math.isclose(below, edge - 1e-3 - 0.5 * math.sin(0.5), abs_tol=1e-5)


def test_arcface_gradient_is_finite_at_cosine_one():
    cosine = torch.tensor([[1.0, 0.0]], requires_grad=True)
    ArcFace()(cosine, torch.tensor([0])).sum().backward()
    assert torch.isfinite(cosine.grad).all()


def test_cosface_subtracts_the_margin_from_the_target_only():
    cosine = torch.tensor([[0.5, 0.25], [-0.5, 0.75]])
    out = CosFace(s=10.0, m=0.4)(cosine, torch.tensor([1, 0]))
    torch.testing.assert_close(out, torch.tensor([[5.0, -1.5], [-9.0, 7.5]]))


def test_sampling_keeps_every_positive_and_has_the_requested_size():
    g = torch.Generator().manual_seed(0)
    for trial in range(20):
        labels = torch.randint(0, 1000, (32,), generator=g)
        index, local = sample_classes(labels, num_classes=1000, num_sample=100, generator=g)
        assert index.numel() == 100
        assert torch.equal(index, torch.unique(index))  # sorted and distinct
        assert set(labels.tolist()) <= set(index.tolist())
        assert torch.equal(index[local], labels)
        assert index.min() >= 0 and index.max() < 1000


def test_sampling_keeps_all_positives_when_they_exceed_the_budget():
    labels = torch.arange(50)
    index, local = sample_classes(labels, num_classes=1000, num_sample=10)
    assert torch.equal(index, labels) and torch.equal(local, labels)


def test_sampled_classifier_is_seeded_and_touches_only_sampled_rows():
    torch.manual_seed(0)
    emb = torch.randn(16, 8)
    labels = torch.randint(0, 200, (16,))
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        clf = MarginClassifier(8, 200, ArcFace(), sample_rate=0.1, seed=7)
        out = clf(emb, labels)
        out.loss.backward()
        runs.append(out.class_index)
        assert out.logits.shape == (16, 20)
        touched = clf.weight.grad.abs().sum(1) > 0
        assert set(torch.nonzero(touched).flatten().tolist()) <= set(out.class_index.tolist())
        assert touched[labels].all()
    assert torch.equal(runs[0], runs[1])


def test_sampler_position_is_restored_from_a_checkpoint():
    labels = torch.randint(0, 500, (8,), generator=torch.Generator().manual_seed(0))
    emb = torch.randn(8, 4)
    clf = MarginClassifier(4, 500, CosFace(), sample_rate=0.05, seed=3)
    clf(emb, labels)
    state = clf.state_dict()
    expected = [clf(emb, labels).class_index for _ in range(2)]
    resumed = MarginClassifier(4, 500, CosFace(), sample_rate=0.05, seed=3)
    resumed.load_state_dict(state)
    got = [resumed(emb, labels).class_index for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(expected, got))
    assert not torch.equal(expected[0], expected[1])


def test_classifier_checkpoint_round_trips_through_the_strict_loader(tmp_path):
    from vec2face.models.state_dict import load_state_dict_strict, read_state_dict

    clf = MarginClassifier(4, 50, ArcFace(), sample_rate=0.2, seed=1)
    clf(torch.randn(3, 4), torch.tensor([1, 2, 3]))
    torch.save(clf.state_dict(), tmp_path / "head.pth")
    fresh = MarginClassifier(4, 50, ArcFace(), sample_rate=0.2, seed=1)
    load_state_dict_strict(fresh, read_state_dict(tmp_path / "head.pth"), source="head.pth")
    assert torch.equal(fresh.weight, clf.weight)
    labels = torch.tensor([4, 5, 6])
    assert torch.equal(
        fresh(torch.randn(3, 4), labels).class_index, clf(torch.randn(3, 4), labels).class_index
    )


def _toy_problem(num_classes: int = 10, per_class: int = 8, dim: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=g) * 3
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    x = centres[labels] + 0.3 * torch.randn(labels.numel(), dim, generator=g)
    return x, labels


@pytest.mark.parametrize(
    "margin, sample_rate",
    [(ArcFace(s=16.0, m=0.3), 1.0), (CosFace(s=16.0, m=0.2), 1.0), (ArcFace(s=16.0, m=0.3), 0.5)],
)
def test_loss_decreases_on_a_separable_toy_problem(margin, sample_rate):
    torch.manual_seed(0)
    x, labels = _toy_problem()
    net = torch.nn.Linear(16, 8)
    clf = MarginClassifier(8, 10, margin, sample_rate=sample_rate, seed=0)
    opt = torch.optim.SGD([*net.parameters(), *clf.parameters()], lr=0.1, momentum=0.9)
    losses = []
    for _ in range(150):
        out = clf(net(x), labels)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.2 * losses[0]
    full = MarginClassifier(8, 10, margin)
    full.weight = clf.weight
    assert full(net(x), labels).accuracy.item() == 1.0


def test_bf16_autocast_keeps_the_margin_in_float32():
    clf = MarginClassifier(8, 30, ArcFace())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = clf(torch.randn(4, 8), torch.tensor([0, 1, 2, 3]))
    assert out.logits.dtype == torch.float32 and torch.isfinite(out.loss)


def test_bad_inputs_are_rejected():
    clf = MarginClassifier(8, 30, CosFace())
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 30\), got \[0, 30\]"):
        clf(torch.randn(2, 8), torch.tensor([0, 30]))
    with pytest.raises(ValueError, match=r"embeddings must be \(N, 8\)"):
        clf(torch.randn(2, 9), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="sample_rate"):
        MarginClassifier(8, 30, CosFace(), sample_rate=0.0)
