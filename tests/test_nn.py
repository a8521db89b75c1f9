import math
import pickle

import numpy as np
import pytest
import torch

import aquasurf_fast as aq
from aquasurf_fast.testing.reference import evaluate_torch


def test_gradcheck_in_float64():
    for name in ["max(relu(x),cosh(elu(x)))", "prod_n(tanh(x),x,swish(x))", "div(x,add(one(x),abs(x)))"]:
        x = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(aq.Activation(name), (x,)), name


def test_forward_and_backward_match_the_composite_torch_expression():
    name = "max(relu(x),cosh(elu(x)))"
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    y, y_ref = aq.Activation(name)(x), evaluate_torch(name, x_ref)
    torch.testing.assert_close(y, y_ref, rtol=1e-6, atol=1e-6)
    g = torch.randn_like(y)
    y.backward(g)
    y_ref.backward(g)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-6)


def test_backward_saves_only_the_input():
    act = aq.Activation("tanh(x)")
    x = torch.randn(10, requires_grad=True)
    y = act(x)
    saved = y.grad_fn.saved_tensors
    assert len(saved) == 1 and saved[0].data_ptr() == x.data_ptr()


def test_repr_and_pickle_keep_the_expression():
    act = aq.Activation(" max( relu(x), tanh(x) ) ", normalize=True)
    assert repr(act) == "Activation('max(relu(x),tanh(x))', normalize=True)"
    back = pickle.loads(pickle.dumps(act))
    x = torch.randn(100)
    torch.testing.assert_close(back(x), act(x), rtol=0, atol=0)


def test_normalize_gives_zero_mean_unit_second_moment_under_a_standard_normal():
    rng = np.random.default_rng(0)
    z = torch.from_numpy(rng.normal(size=2_000_000))
    for name in ["relu(x)", "swish(x)", "exp(x)", "max(relu(x),cosh(elu(x)))"]:
        y = aq.Activation(name, normalize=True)(z)
        assert abs(y.mean().item()) < 5e-3, name
        assert abs((y ** 2).mean().item() - 1) < 2e-2, name


def test_normalize_relu_constants_are_exact():
    act = aq.Activation("relu(x)", normalize=True)
    mean = 1 / math.sqrt(2 * math.pi)
    assert act.shift == pytest.approx(mean, rel=1e-7)
    assert act.scale == pytest.approx(1 / math.sqrt(0.5 - mean**2), rel=1e-7)


def test_normalize_refuses_constant_and_nonfinite_functions():
    with pytest.raises(ValueError, match="cannot normalize zero"):
        aq.Activation("zero(x)", normalize=True)
    with pytest.raises(ValueError, match="cannot normalize"):
        aq.Activation("reciprocal(x)", normalize=True)


def test_integer_tensors_are_refused():
    with pytest.raises(TypeError, match="float32 or float64"):
        aq.Activation("relu(x)")(torch.arange(3))


def _small_cnn(act):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), act, torch.nn.Conv2d(4, 4, 3, stride=2), act,
        torch.nn.Flatten(), torch.nn.Linear(4 * 3 * 3, 3))


class _Composite(torch.nn.Module):
    def __init__(self, name):
        super().__init__()
        self.name = name

    def forward(self, x):
        return evaluate_torch(self.name, x)


def _losses(act, steps=5):
    model = _small_cnn(act)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 1, 8, 8, generator=gen), torch.randint(0, 3, (16,), generator=gen)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_training_follows_the_composite_expressions_loss_trajectory():
    name = "max(relu(x),cosh(elu(x)))"
    np.testing.assert_allclose(_losses(aq.Activation(name)), _losses(_Composite(name)), rtol=1e-5)


@pytest.mark.skipif(not aq.cuda_available(), reason="needs a CUDA GPU")
def test_cuda_forward_backward_match_cpu():
    act = aq.Activation("max(relu(x),cosh(elu(x)))")
    x = torch.randn(1000, dtype=torch.float64)
    xc = x.cuda().requires_grad_(True)
    xh = x.clone().requires_grad_(True)
    act(xc).sum().backward()
    act(xh).sum().backward()
    torch.testing.assert_close(xc.grad.cpu(), xh.grad, rtol=1e-12, atol=1e-12)
