"""numpy, torch and cupy inputs: output kind, dtype, device and layout."""
import numpy as np
import pytest
import torch

import aquasurf_fast as aq

FNS = ["tanh(x)", "max(relu(x),cosh(elu(x)))"]


def test_numpy_in_numpy_out_with_function_axis_first():
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    y = aq.evaluate(FNS, x)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == (2, 3, 4)
    np.testing.assert_allclose(y[0], np.tanh(x), rtol=1e-6)


def test_non_contiguous_numpy_equals_its_contiguous_copy():
    base = np.random.default_rng(0).normal(size=(40, 30)).astype(np.float64)
    view = base[::3, ::-2].T
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(aq.evaluate(FNS, view), aq.evaluate(FNS, np.ascontiguousarray(view)))


def test_read_only_numpy_input_is_fine():
    x = np.arange(5, dtype=np.float32)
    x.setflags(write=False)
    assert aq.evaluate("square(x)", x)[0, 4] == 16


def test_empty_inputs_give_empty_outputs():
    assert aq.evaluate(FNS, np.zeros((0, 3), np.float32)).shape == (2, 0, 3)
    v, d = aq.evaluate_grad(FNS, np.zeros(0, np.float64))
    assert v.shape == d.shape == (2, 0)
    assert aq.evaluate([], np.ones(3, np.float32)).shape == (0, 3)


def test_scalars_lists_and_integers_compute_in_float32():
    assert aq.evaluate("square(x)", 3).dtype == np.float32
    assert aq.evaluate("square(x)", [1, 2]).tolist() == [[1.0, 4.0]]
    assert aq.evaluate("square(x)", np.arange(3)).dtype == np.float32


def test_torch_cpu_in_torch_out_through_dlpack():
    x = torch.linspace(-2, 2, 7, dtype=torch.float64)
    y = aq.evaluate(FNS, x)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float64 and y.shape == (2, 7)
    torch.testing.assert_close(y[0], torch.tanh(x))


def test_torch_non_contiguous_and_requires_grad_inputs():
    x = torch.randn(6, 5, requires_grad=True)
    y = aq.evaluate(FNS, x.t())
    torch.testing.assert_close(y, aq.evaluate(FNS, x.detach().t().contiguous()))


def test_evaluate_grad_returns_the_inputs_kind():
    v, d = aq.evaluate_grad(FNS, torch.zeros(3))
    assert isinstance(v, torch.Tensor) and isinstance(d, torch.Tensor)
    np.testing.assert_array_equal(d[0].numpy(), [1.0, 1.0, 1.0])


def test_unsupported_inputs_are_type_errors():
    with pytest.raises(TypeError, match="numpy array, a torch tensor or a cupy array"):
        aq.evaluate("relu(x)", {"x": 1})
    with pytest.raises(TypeError, match="must hold numbers"):
        aq.evaluate("relu(x)", np.array(["a"]))


def test_compiled_programs_are_reusable_and_checked():
    program = aq.compile(FNS)
    x = np.ones(4, np.float32)
    np.testing.assert_array_equal(aq.evaluate(program, x), aq.evaluate(FNS, x))
    with pytest.raises(ValueError, match="with_grad"):
        aq.evaluate_grad(program, x)


def test_batch_parse_error_names_the_function():
    with pytest.raises(aq.ParseError, match=r"name #1: unknown operator 'relux'"):
        aq.evaluate(["relu(x)", "relux(x)"], np.ones(2, np.float32))


@pytest.mark.skipif(not aq.cuda_available(), reason="needs a CUDA GPU")
def test_cuda_tensors_match_the_cpu_bit_for_bit():
    names = aq.enumerate_schema("binary(unary(x),unary(x))", unary=aq.BENCHMARK_UNARY_OPS)
    cpu = aq.evaluate(names, torch.from_numpy(aq.probe_inputs()))
    gpu = aq.evaluate(names, torch.from_numpy(aq.probe_inputs()).cuda())
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=0, equal_nan=True)


@pytest.mark.skipif(not aq.cuda_available(), reason="needs a CUDA GPU")
def test_cupy_in_cupy_out():
    cupy = pytest.importorskip("cupy")
    x = cupy.linspace(-2, 2, 9, dtype=cupy.float32)
    y = aq.evaluate(FNS, x)
    assert isinstance(y, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(y), aq.evaluate(FNS, cupy.asnumpy(x)), rtol=1e-6)
