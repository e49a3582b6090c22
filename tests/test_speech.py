"""monge.speech.ot_alignment_loss: the paper's OT loss between padded speech and text encodings."""
import warnings

import numpy as np
import pytest
import torch

import monge
from monge import ConvergenceWarning
from monge.speech import length_weights, ot_alignment_loss, position_features


def _batch(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    B, Ts, Tt, d = 4, 11, 6, 5
    s = torch.randn(B, Ts, d, generator=g, dtype=dtype)
    t = torch.randn(B, Tt, d, generator=g, dtype=dtype)
    return s, t, [11, 5, 8, 1], [6, 3, 1, 4]


def test_position_features_and_weights():
    h = torch.zeros(2, 5, 3)
    x = position_features(h, [5, 3], weight=2.0)
    assert x.shape == (2, 5, 4)
    assert torch.allclose(x[0, :, 3], torch.tensor([0, 0.5, 1.0, 1.5, 2.0]))
    assert torch.allclose(x[1, :, 3], torch.tensor([0, 1.0, 2.0, 0, 0]))  # padding: 0
    assert torch.equal(position_features(h, [1, 1])[..., 3], torch.zeros(2, 5))  # length 1: 0
    w = length_weights(torch.tensor([5, 2]), 5)
    assert torch.allclose(w.sum(1), torch.ones(2, dtype=w.dtype))
    assert torch.equal(w[1, 2:], torch.zeros(3, dtype=w.dtype))


def test_batched_equals_per_sample_loop_and_matches_numpy():
    s, t, Ls, Lt = _batch()
    per = ot_alignment_loss(s, t, Ls, Lt, eps=0.5, position_weight=1.0, reduction="none", tol=1e-12)
    assert per.shape == (4,)
    for k in range(4):
        one = ot_alignment_loss(s[k:k + 1, :Ls[k]], t[k:k + 1, :Lt[k]], eps=0.5, tol=1e-12)
        assert abs(float(per[k]) - float(one)) < 1e-10
        # the same divergence from the NumPy API on explicitly built point clouds
        xs = np.concatenate([s[k, :Ls[k]].numpy(), (np.arange(Ls[k]) / max(Ls[k] - 1, 1))[:, None]], 1)
        yt = np.concatenate([t[k, :Lt[k]].numpy(), (np.arange(Lt[k]) / max(Lt[k] - 1, 1))[:, None]], 1)
        ref = monge.sinkhorn_divergence(xs, yt, eps=0.5, tol=1e-12).value
        assert abs(float(per[k]) - ref) < 1e-10
    assert float(ot_alignment_loss(s, t, Ls, Lt, eps=0.5, tol=1e-12)) == pytest.approx(
        float(per.mean()), abs=1e-12)
    assert (per > 0).all()


def test_padding_carries_no_mass_and_no_gradient():
    s, t, Ls, Lt = _batch(1)
    s2, t2 = s.clone(), t.clone()
    for k in range(4):  # garbage in the padding
        s2[k, Ls[k]:] = 1e3
        t2[k, Lt[k]:] = -1e3
    s2.requires_grad_(True)
    t2.requires_grad_(True)
    a = ot_alignment_loss(s, t, Ls, Lt, eps=0.5, reduction="none", tol=1e-12)
    b = ot_alignment_loss(s2, t2, Ls, Lt, eps=0.5, reduction="none", tol=1e-12)
    assert torch.allclose(a, b, atol=1e-10, rtol=0)
    b.sum().backward()
    for k in range(4):
        assert torch.count_nonzero(s2.grad[k, Ls[k]:]) == 0
        assert torch.count_nonzero(t2.grad[k, Lt[k]:]) == 0
        assert s2.grad[k, :Ls[k]].abs().sum() > 0


def test_gradcheck_against_finite_differences():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(2, 5, 2, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    f = lambda u, v: ot_alignment_loss(u, v, [5, 3], [2, 3], eps=0.7, position_weight=1.5,  # noqa
                                       tol=1e-13)
    assert torch.autograd.gradcheck(f, (s, t), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_directional_derivatives_on_a_padded_batch():
    s, t, Ls, Lt = _batch(4)
    s.requires_grad_(True)
    t.requires_grad_(True)
    f = lambda u, v: ot_alignment_loss(u, v, Ls, Lt, eps=0.5, tol=1e-13, reduction="sum")  # noqa
    f(s, t).backward()
    g = torch.Generator().manual_seed(5)
    h = 1e-5
    for _ in range(3):
        ds_, dt_ = torch.randn(s.shape, generator=g, dtype=s.dtype), torch.randn(t.shape, generator=g, dtype=t.dtype)
        with torch.no_grad():
            fd = (f(s + h * ds_, t + h * dt_) - f(s - h * ds_, t - h * dt_)) / (2 * h)
        an = (s.grad * ds_).sum() + (t.grad * dt_).sum()
        assert abs(float(fd) - float(an)) < 1e-5 * max(1.0, abs(float(an)))


def test_position_weight_favours_monotone_alignment():
    # the same tokens in the same order vs reversed: with positions the reversed pair is farther
    g = torch.Generator().manual_seed(3)
    t = torch.randn(1, 6, 4, generator=g, dtype=torch.float64)
    rev = t.flip(1)
    same = ot_alignment_loss(t, t, eps=0.1, position_weight=3.0, tol=1e-10)
    flipped = ot_alignment_loss(rev, t, eps=0.1, position_weight=3.0, tol=1e-10)
    no_pos = ot_alignment_loss(rev, t, eps=0.1, position_weight=0.0, tol=1e-10)
    assert float(same) == pytest.approx(0.0, abs=1e-8)
    assert float(no_pos) == pytest.approx(0.0, abs=1e-8)  # a bag of frames ignores order
    assert float(flipped) > 0.5


def test_bad_inputs():
    s, t, Ls, Lt = _batch()
    with pytest.raises(TypeError, match="speech"):
        ot_alignment_loss(s.numpy(), t)
    with pytest.raises(ValueError, match="text"):
        ot_alignment_loss(s, t[:2])
    with pytest.raises(ValueError, match="text"):
        ot_alignment_loss(s, t[..., :3])
    with pytest.raises(ValueError, match="speech_lengths"):
        ot_alignment_loss(s, t, [11, 5, 8, 0], Lt)
    with pytest.raises(ValueError, match="text_lengths"):
        ot_alignment_loss(s, t, Ls, [6, 3, 1, 7])
    with pytest.raises(ValueError, match="text_lengths"):
        ot_alignment_loss(s, t, Ls, [6, 3])
    with pytest.raises(TypeError, match="speech_lengths"):
        ot_alignment_loss(s, t, [1.5, 2, 3, 4], Lt)
    with pytest.raises(ValueError, match="reduction"):
        ot_alignment_loss(s, t, reduction="max")
    with pytest.raises(ValueError, match="weight"):
        position_features(s, Ls, weight=-1.0)
    with pytest.raises(ValueError, match="eps"):
        ot_alignment_loss(s, t, eps=0.0)


def test_a_batch_whose_solve_stopped_mid_scaling_raises_not_nan():
    """Some pairs of this batch stop at max_iter during eps-scaling (nothing to form the loss
    from) while others merely end unconverged at the target eps: the call must raise, never
    return NaN for the former behind a convergence warning about the latter."""
    torch.manual_seed(0)
    B, Ts, Tt, d = 32, 60, 40, 64
    hs = torch.nn.functional.layer_norm(torch.randn(B, Ts, d), (d,)).double()
    ht = torch.nn.functional.layer_norm(torch.randn(B, Tt, d), (d,)).double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(RuntimeError, match="max_iter ran out during eps-scaling"):
            ot_alignment_loss(hs, ht, eps=0.005, max_iter=500, reduction="none")
        v = ot_alignment_loss(hs, ht, eps=0.005, max_iter=5000, reduction="none")
    assert torch.isfinite(v).all()
