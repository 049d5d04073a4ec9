"""VariationalBottleneck: gradients of every output (z, mu, log_var, the KL term) with respect to
h and the heads' parameters, the KL against its closed form, free bits, eval mode and shapes."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nnscratch as nn
from nnscratch.testing import check_layer
from strategies import arrays


class _Probe(nn.Layer):
    """Exposes every output of the bottleneck, the KL as a 0-d array, to check_layer."""

    def __init__(self, bottleneck):
        super().__init__()
        self.b = bottleneck

    def forward(self, h, eps):
        out = self.b(h, eps)
        return out.z, out.mu, out.log_var, np.asarray(out.kl)

    def backward(self, grads):
        dz, dmu, dlv, dkl = grads
        return self.b.backward(dz, kl_weight=float(dkl), dmu=dmu, dlog_var=dlv)


def _bottleneck(f, z, **kw):
    return nn.VariationalBottleneck(f, z, **kw).to(dtype=np.float64)


@given(h=arrays(shape=st.tuples(st.integers(1, 5), st.integers(1, 5))), latent=st.integers(1, 4),
       reduction=st.sampled_from(["mean", "sum"]), data=st.data())
def test_gradients_of_every_output(h, latent, reduction, data):
    eps = data.draw(arrays((h.shape[0], latent)))
    check_layer(_Probe(_bottleneck(h.shape[1], latent, reduction=reduction)), [h, eps],
                check_inputs=[0])


def test_gradients_with_free_bits_some_dimensions_below_the_floor():
    rng = np.random.default_rng(3)
    b = _bottleneck(4, 6, free_bits=0.0)
    h = rng.normal(size=(5, 4))
    eps = rng.normal(size=(5, 6))
    per_dim = b(h, eps).kl_per_dim
    b.clear_contexts()
    # a floor in the widest gap between two of the dimensions' KLs, far from both, so that some
    # dimensions are active and some are not, and no finite-difference step crosses the kink
    k = np.sort(per_dim)
    gap = int(np.argmax(np.diff(k)[1:-1])) + 1
    assert k[gap + 1] - k[gap] > 0.05
    b.free_bits = float(0.5 * (k[gap] + k[gap + 1]))
    out = b(h, eps)
    b.clear_contexts()
    active = out.kl_per_dim > b.free_bits
    assert 0 < active.sum() < 6
    np.testing.assert_allclose(out.kl, out.kl_per_dim[active].sum() + (~active).sum() * b.free_bits)
    check_layer(_Probe(b), [h, eps], check_inputs=[0])


def test_kl_matches_closed_form_and_the_kl_loss():
    rng = np.random.default_rng(0)
    b = _bottleneck(3, 4)
    h = rng.normal(size=(7, 3))
    out = b(h, rng.normal(size=(7, 4)))
    mu, lv = out.mu, out.log_var
    closed = np.mean(np.sum(0.5 * (mu ** 2 + np.exp(lv) - 1 - lv), axis=1))
    np.testing.assert_allclose(out.kl, closed, rtol=1e-12)
    np.testing.assert_allclose(out.kl_per_dim.sum(), closed, rtol=1e-12)
    np.testing.assert_allclose(out.kl, nn.KLDivergence(reduction="mean")(mu, lv), rtol=1e-12)


def test_z_is_the_reparameterised_sample_and_mu_in_eval():
    rng = np.random.default_rng(1)
    b = _bottleneck(3, 2)
    h, eps = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    out = b(h, eps)
    np.testing.assert_allclose(out.z, out.mu + np.exp(0.5 * out.log_var) * eps, rtol=1e-12)
    b.eval()
    with nn.no_grad():
        ev = b(h)
    np.testing.assert_array_equal(ev.z, ev.mu)


def test_zero_kl_weight_leaves_only_the_sampling_path():
    rng = np.random.default_rng(2)
    b = _bottleneck(3, 2)
    h, eps = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    b(h, eps)
    dz = rng.normal(size=(4, 2))
    dh = b.backward(dz, kl_weight=0.0)
    ref = nn.Reparameterize().to(dtype=np.float64)
    mu, lv = b.fc_mu.weight.data, b.fc_log_var.weight.data
    m = h @ mu.T + b.fc_mu.bias.data
    v = h @ lv.T + b.fc_log_var.bias.data
    ref(m, v, eps)
    dmu, dlv = ref.backward(dz)
    np.testing.assert_allclose(dh, dmu @ mu + dlv @ lv, rtol=1e-12)


def test_bad_shapes_and_options_are_named():
    b = nn.VariationalBottleneck(3, 2)
    with pytest.raises(ValueError, match="VariationalBottleneck"):
        b(np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="free_bits"):
        nn.VariationalBottleneck(3, 2, free_bits=-1)
    with pytest.raises(ValueError, match="reduction"):
        nn.VariationalBottleneck(3, 2, reduction="none")
