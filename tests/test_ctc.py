"""CTC loss: values and gradients against torch.nn.functional.ctc_loss (float64, 1e-6 and far
tighter in practice), finite differences, edge cases and bad input."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import monge
import monge.torch as mt


def make(T, N, C, S, seed, min_len=None, scale=1.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(T, N, C, generator=g, dtype=dtype) * scale
    lp = logits.log_softmax(-1)
    tg = torch.randint(1, C, (N, S), generator=g)
    tl = torch.randint(0 if min_len is None else min_len, S + 1, (N,), generator=g)
    il = torch.randint(1, T + 1, (N,), generator=g)
    return logits, lp, tg, il, tl


def torch_ref(lp, tg, il, tl, reduction, zero_infinity=False):
    x = lp.detach().clone().requires_grad_(True)
    loss = F.ctc_loss(x, tg, il, tl, reduction=reduction, zero_infinity=zero_infinity)
    (loss.sum() if reduction == "none" else loss).backward()
    return loss.detach().numpy(), x.grad.numpy()


@pytest.mark.parametrize("T,N,C,S,seed", [(20, 3, 5, 6, 0), (50, 8, 12, 15, 1), (7, 5, 3, 3, 2),
                                          (100, 4, 30, 40, 3), (1, 2, 4, 1, 4)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_values_and_gradients_match_torch(T, N, C, S, seed, reduction):
    _, lp, tg, il, tl = make(T, N, C, S, seed)
    ref_loss, ref_grad = torch_ref(lp, tg, il, tl, reduction, zero_infinity=True)
    r = monge.ctc_loss(lp.numpy(), tg.numpy(), il.numpy(), tl.numpy(), reduction=reduction,
                       zero_infinity=True, grad="logits")
    np.testing.assert_allclose(r.loss, ref_loss, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.grad, ref_grad, rtol=0, atol=1e-10)


def test_edge_cases_match_torch():
    C = 5
    lp = torch.randn(6, 5, C, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    lp = lp.log_softmax(-1)
    tg = torch.tensor([[1, 2, 3, 4, 1, 2], [1, 1, 2, 0, 0, 0], [0, 0, 0, 0, 0, 0],
                       [3, 3, 3, 0, 0, 0], [2, 2, 2, 2, 0, 0]])
    # T = S; repeats needing blanks; empty target; exactly enough frames; impossible (2 2 2 2
    # needs 7 frames)
    il = torch.tensor([6, 4, 6, 5, 6])
    tl = torch.tensor([6, 3, 0, 3, 4])
    for zi in (True, False):
        loss, grad = torch_ref(lp, tg, il, tl, "none", zero_infinity=zi)
        r = monge.ctc_loss(lp.numpy(), tg.numpy(), il.numpy(), tl.numpy(), reduction="none",
                           zero_infinity=zi, grad="logits")
        assert r.per_sample[4] == (0.0 if zi else np.inf)
        np.testing.assert_allclose(r.per_sample, loss, rtol=1e-12)
        if zi:
            np.testing.assert_allclose(r.grad, grad, atol=1e-12)
        else:  # torch's gradient is NaN for the impossible sample; ours is 0 there
            np.testing.assert_allclose(r.grad[:, :4], grad[:, :4], atol=1e-12)
            assert (r.grad[:, 4] == 0).all()
    # a model that always says blank, and an empty target: loss = -sum_t log p(blank)
    logits = torch.zeros(9, 1, 4, dtype=torch.float64)
    logits[:, :, 0] = 30.0
    lpb = logits.log_softmax(-1)
    r = monge.ctc_loss(lpb.numpy(), np.zeros((1, 0), dtype=np.int64), [9], [0], reduction="sum")
    assert r.loss == pytest.approx(-lpb[:, 0, 0].sum().item(), rel=1e-12)


def test_padded_and_concatenated_targets_agree():
    _, lp, tg, il, tl = make(30, 6, 7, 9, 6)
    flat = np.concatenate([tg[n, :tl[n]].numpy() for n in range(6)])
    a = monge.ctc_loss(lp.numpy(), tg.numpy(), il.numpy(), tl.numpy(), grad="logits")
    b = monge.ctc_loss(lp.numpy(), flat, il.numpy(), tl.numpy(), grad="logits")
    assert a.loss == b.loss and np.array_equal(a.grad, b.grad)
    ref = F.ctc_loss(lp, torch.as_tensor(flat), il, tl)
    assert a.loss == pytest.approx(ref.item(), rel=1e-12)


def test_log_probs_gradient_finite_differences_and_torch_relation():
    _, lp, tg, il, tl = make(12, 3, 4, 4, 7, min_len=1)
    il = torch.tensor([12, 10, 12])
    lpn = lp.numpy().copy()
    r = monge.ctc_loss(lpn, tg.numpy(), il.numpy(), tl.numpy(), reduction="sum", grad="log_probs")
    h = 1e-6
    rng = np.random.default_rng(0)
    for _ in range(25):
        idx = (rng.integers(12), rng.integers(3), rng.integers(4))
        up, dn = lpn.copy(), lpn.copy()
        up[idx] += h
        dn[idx] -= h
        fd = (monge.ctc_loss(up, tg.numpy(), il.numpy(), tl.numpy(), reduction="sum").loss
              - monge.ctc_loss(dn, tg.numpy(), il.numpy(), tl.numpy(), reduction="sum").loss) / (2 * h)
        assert abs(fd - r.grad[idx]) < 1e-6
    # torch reports the logits gradient: exp(lp) - gamma = ours + exp(lp) on the valid frames
    _, tgrad = torch_ref(lp, tg, il, tl, "sum")
    valid = (np.arange(12)[:, None] < il.numpy()[None, :])[..., None]
    np.testing.assert_allclose(r.grad + np.exp(lpn) * valid, tgrad, atol=1e-12)


def test_peaked_log_probs_use_the_log_domain_fallback():
    # log-probabilities ~1000 apart within a frame: the rescaled recursion underflows
    _, lp, tg, il, tl = make(40, 4, 6, 10, 8, min_len=1, scale=400.0)
    loss, grad = torch_ref(lp, tg, il, tl, "none", zero_infinity=True)
    assert lp.min() < -745
    r = monge.ctc_loss(lp.numpy(), tg.numpy(), il.numpy(), tl.numpy(), reduction="none",
                       zero_infinity=True, grad="logits")
    finite = np.isfinite(loss) & (loss > 0)
    np.testing.assert_allclose(r.per_sample[finite], loss[finite], rtol=1e-10)
    np.testing.assert_allclose(r.grad, grad, atol=1e-9)


def test_float32_and_unbatched():
    _, lp, tg, il, tl = make(25, 4, 8, 6, 9, dtype=torch.float32)
    ref_loss, ref_grad = torch_ref(lp, tg, il, tl, "mean", zero_infinity=True)
    r = monge.ctc_loss(lp.numpy(), tg.numpy(), il.numpy(), tl.numpy(), zero_infinity=True,
                       grad="logits")
    assert r.grad.dtype == np.float32
    assert r.loss == pytest.approx(float(ref_loss), rel=1e-5)
    np.testing.assert_allclose(r.grad, ref_grad, atol=1e-5)
    one = monge.ctc_loss(lp[:, 0].numpy().astype(np.float64), tg[0, :tl[0]].numpy(), [il[0]],
                         [tl[0]], reduction="sum", grad="logits")
    assert one.grad.shape == (25, 8)


def test_thread_count_does_not_change_results():
    _, lp, tg, il, tl = make(60, 16, 10, 20, 10)
    monge.set_num_threads(1)
    a = monge.ctc_loss(lp.numpy(), tg.numpy(), il.numpy(), tl.numpy(), grad="logits")
    monge.set_num_threads(2)
    b = monge.ctc_loss(lp.numpy(), tg.numpy(), il.numpy(), tl.numpy(), grad="logits")
    assert a.loss == b.loss and np.array_equal(a.grad, b.grad)


@pytest.mark.parametrize("C,S", [(5, 5), (200, 3)])  # gradient in the forward / in the backward
def test_torch_autograd_function(C, S):
    logits, lp, tg, il, tl = make(15, 3, C, S, 11)
    for reduction in ("mean", "sum", "none"):
        x1 = logits.clone().requires_grad_(True)
        x2 = logits.clone().requires_grad_(True)
        ours = mt.ctc_loss(x1.log_softmax(-1), tg, il, tl, reduction=reduction, zero_infinity=True)
        ref = F.ctc_loss(x2.log_softmax(-1), tg, il, tl, reduction=reduction, zero_infinity=True)
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
        w = torch.arange(1.0, 4.0, dtype=torch.float64) if reduction == "none" else 1.0
        (ours * w).sum().backward()
        (ref * w).sum().backward()
        torch.testing.assert_close(x1.grad, x2.grad, rtol=0, atol=1e-12)
    small = torch.randn(6, 2, 3, dtype=torch.float64).log_softmax(-1).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda v: mt.ctc_loss(v, torch.tensor([[1, 2], [2, 2]]), [6, 5], [2, 2], reduction="sum"),
        (small,))


def test_bad_input_errors():
    lp = np.log(np.full((5, 2, 4), 0.25))
    tg = np.array([[1, 2], [3, 1]])
    ok = dict(input_lengths=[5, 5], target_lengths=[2, 2])
    with pytest.raises(ValueError, match="input_lengths: each must be in"):
        monge.ctc_loss(lp, tg, [6, 5], [2, 2])
    with pytest.raises(ValueError, match="input_lengths: each must be in"):
        monge.ctc_loss(lp, tg, [0, 5], [2, 2])
    with pytest.raises(ValueError, match="target_lengths: sample 1 has 3 > S_max"):
        monge.ctc_loss(lp, tg, [5, 5], [2, 3])
    with pytest.raises(ValueError, match="target_lengths: must be >= 0"):
        monge.ctc_loss(lp, tg, [5, 5], [-1, 2])
    with pytest.raises(ValueError, match="input_lengths: expected 2 entries"):
        monge.ctc_loss(lp, tg, [5], [2, 2])
    with pytest.raises(ValueError, match="targets: the blank label 0"):
        monge.ctc_loss(lp, np.array([[0, 1], [1, 2]]), **ok)
    with pytest.raises(ValueError, match=r"targets: labels must be in \[0, C = 4\)"):
        monge.ctc_loss(lp, np.array([[4, 1], [1, 2]]), **ok)
    with pytest.raises(ValueError, match="targets: concatenated targets"):
        monge.ctc_loss(lp, np.array([1, 2, 3]), **ok)
    with pytest.raises(TypeError, match="targets: expected integer"):
        monge.ctc_loss(lp, tg.astype(float), **ok)
    bad = lp.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="log_probs: contains NaN"):
        monge.ctc_loss(bad, tg, **ok)
    huge = np.full_like(lp, 1.7e308)        # finite, but the sums overflow (found by libFuzzer)
    for grad in (None, "log_probs", "logits"):
        with pytest.raises(ValueError, match="so large that the loss overflows"):
            monge.ctc_loss(huge, tg, grad=grad, **ok)
    with pytest.raises(ValueError, match="blank: must be < the number of classes"):
        monge.ctc_loss(lp, tg, blank=4, **ok)
    with pytest.raises(ValueError, match="reduction: unknown"):
        monge.ctc_loss(lp, tg, reduction="avg", **ok)
    with pytest.raises(ValueError, match="grad: expected"):
        monge.ctc_loss(lp, tg, grad="z", **ok)
    with pytest.raises(ValueError, match="log_probs: expected"):
        monge.ctc_loss(lp[0, 0], tg, **ok)
    # -inf log-probabilities are probabilities 0, not errors
    z = lp.copy()
    z[:, :, 3] = -np.inf
    r = monge.ctc_loss(z, np.array([[1, 2], [2, 1]]), **ok, reduction="none")
    assert np.isfinite(r.per_sample).all()
    assert monge.ctc_loss(z, tg, **ok, reduction="none").per_sample[1] == np.inf  # needs label 3
