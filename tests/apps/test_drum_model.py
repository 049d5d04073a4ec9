"""apps/drums/model.py and loss.py: the whole model's hand-written backward checked numerically
(float64, random directions, tiny sizes), also with layers frozen as in the layer-wise schedule;
the loss's gradients; generation; a few training steps lower the loss; metrics; transfer."""
from __future__ import annotations

import numpy as np
import pytest

import nnscratch as nn
from apps.drums import groove
from apps.drums import loss as dl
from apps.drums import model as dm
from nnscratch.testing import check_layer, numerical_grad

IN = (5, 4, 6)


def _tiny(inputs=IN, **kw):
    nn.manual_seed(0)
    with nn.default_dtype(np.float64):
        model = dm.build_model("tiny", inputs=inputs, **kw)
    return model.to(dtype=np.float64)


def _data(B=2, T=8, inputs=IN, seed=0, rate=0.3):
    rng = np.random.default_rng(seed)
    x = [rng.random((B, T, f)) for f in inputs]
    H = (rng.random((B, T, 9)) < rate).astype(np.float64)
    hvo = np.concatenate([H, H * rng.uniform(0.1, 1, (B, T, 9)),
                          H * rng.uniform(-0.45, 0.45, (B, T, 9))], -1)
    return x, hvo, rng


def _away_from_kinks(model, x, margin=2e-3):
    """The gradient check perturbs weights by ~1e-3: no ReLU input of the encoders may lie
    that close to 0, or the difference quotient straddles the kink (CONVENTIONS: keep inputs
    away from kinks)."""
    for enc, a in zip(model.encoders, x):
        with nn.no_grad():
            a1 = enc.conv1(np.ascontiguousarray(a.transpose(0, 2, 1)))
            a2 = enc.conv2(np.maximum(a1, 0))
        assert min(np.abs(a1).min(), np.abs(a2).min()) > margin, "data too close to a ReLU kink"


def _data_away_from_kinks(model, B, T, seed=0, margin=2e-3):
    """_data with the first seed from ``seed`` on whose inputs keep clear of the ReLU kinks."""
    for k in range(seed, seed + 50):
        x, hvo, rng = _data(B=B, T=T, inputs=model.cfg.inputs, seed=k)
        try:
            _away_from_kinks(model, x, margin)
            return x, hvo, rng
        except AssertionError:
            continue
    raise AssertionError("no seed gives data away from the ReLU kinks")


class _Whole(nn.Layer):
    """The model with its data inputs and noise fixed: forward(hvo) -> the five outputs."""

    def __init__(self, model, x, eps):
        super().__init__()
        self.model, self.x, self.eps = model, x, eps

    def forward(self, hvo):
        return self.model(self.x, hvo, self.eps)

    def backward(self, grads):
        return self.model.backward(grads)


def test_gradient_check_of_the_whole_model():
    model = _tiny()
    x, hvo, rng = _data()
    _away_from_kinks(model, x)
    eps = rng.standard_normal((2, model.cfg.latent))
    res = check_layer(_Whole(model, x, eps), [hvo], check_inputs=[], max_elements=16,
                      n_directions=3, tol=1e-6)
    names = {r.name.split("parameter ")[-1].split(" ")[0] for r in res}
    assert len(res) == len(model.parameters())
    for prefix in ("encoders.0.conv1.weight", "encoders.2.lstm.weight_hh_l0_reverse",
                   "merge.weight", "bottleneck.fc_log_var.bias", "conductor.weight_ih_l0",
                   "init_state.weight", "decoder.weight_ih_l1", "head_o.weight"):
        assert f"model.{prefix}" in names, prefix
    assert max(r.max_rel_error for r in res) < 1e-6


def test_gradient_check_of_the_humanisation_model_with_uneven_subsequences():
    # one encoder over the hits (F = 9), 3 sub-sequences of 4 steps
    model = _tiny(inputs=(9,))
    x, hvo, rng = _data(B=3, T=12, inputs=(9,))
    x = [np.ascontiguousarray(hvo[..., :9]) + 0.01]
    _away_from_kinks(model, x)
    eps = rng.standard_normal((3, model.cfg.latent))
    res = check_layer(_Whole(model, x, eps), [hvo], check_inputs=[], max_elements=16,
                      n_directions=2, tol=1e-6)
    assert max(r.max_rel_error for r in res) < 1e-6


@pytest.mark.parametrize("stage", ["heads", "conductor", "merge", "encoder_conv"])
def test_layer_wise_stage_gradients(stage):
    """Only one group trainable: its gradients are right, the frozen ones stay None, and the
    backward that stops early leaves no saved context behind."""
    model = _tiny()
    model.freeze()
    for layer in dict(model.groups())[stage]:
        layer.unfreeze()
    x, hvo, rng = _data(seed=2)
    _away_from_kinks(model, x)
    eps = rng.standard_normal((2, model.cfg.latent))
    res = check_layer(_Whole(model, x, eps), [hvo], check_inputs=[], max_elements=16,
                      n_directions=2, tol=1e-6)
    assert res and max(r.max_rel_error for r in res) < 1e-6
    model.zero_grad()
    out = model(x, hvo, eps)
    model.backward(tuple(np.ones_like(o) for o in out))
    trained = {id(p) for layer in dict(model.groups())[stage] for p in layer.parameters()}
    for name, p in model.named_parameters():
        assert (p.grad is not None) == (id(p) in trained), name
    assert all(not layer._saved for _, layer in model.named_layers()), "contexts left behind"


def test_loss_gradients_match_numerical_ones():
    rng = np.random.default_rng(2)
    B, T = 3, 8
    H = (rng.random((B, T, 9)) < 0.3).astype(np.float64)
    hvo = np.concatenate([H, H * rng.random((B, T, 9)), H * (rng.random((B, T, 9)) - 0.5)], -1)
    outs = [rng.normal(size=(B, T, 9)), rng.random((B, T, 9)), rng.random((B, T, 9)) - 0.5,
            rng.normal(size=(B, 4)), rng.normal(scale=0.5, size=(B, 4))]
    outs[3][0] *= 0.01                                  # window 0 inside its free bits
    fn = dl.DrumLoss(dl.LossConfig(pos_weight=3.0, w_velocity=0.7, w_offset=2.0, beta=0.5,
                                   free_bits=1.0))
    loss, parts = fn(outs, hvo)
    grads = fn.backward()
    for i, o in enumerate(outs):
        num = numerical_grad(lambda: fn(outs, hvo)[0], o)
        np.testing.assert_allclose(grads[i], num, rtol=1e-6, atol=1e-9, err_msg=f"output {i}")
    assert np.all(grads[1][H == 0] == 0) and np.all(grads[2][H == 0] == 0)   # V, O on hits only
    # the KL term: closed form, and nothing below the free bits
    kl = -0.5 * (1 + outs[4] - outs[3] ** 2 - np.exp(outs[4])).sum(-1)
    assert parts["kl"] == pytest.approx(kl.mean())
    assert parts["kl_cost"] == pytest.approx(np.maximum(kl - 1.0, 0).sum() / (B * T * 9))
    assert kl[0] < 1.0 < kl[1]
    assert np.all(grads[3][0] == 0) and np.all(grads[4][0] == 0) and np.any(grads[3][1] != 0)
    fn.backward()                                    # consumes the numerical check's last forward
    with pytest.raises(RuntimeError, match="without a matching forward"):
        fn.backward()


def test_a_few_training_steps_lower_the_loss():
    nn.manual_seed(1)
    model = dm.build_model("tiny", inputs=(8, 8, 8), sub_steps=16, dec_hidden=16, conductor=8)
    x, _, _ = _data(B=8, T=32, inputs=(8, 8, 8), seed=3)
    x = [a.astype(np.float32) for a in x]
    H, V, O = groove.rock_beat(32)                       # a pattern the decoder can learn
    hvo = np.repeat(np.concatenate([H, V, O], -1)[None], 8, axis=0)
    fn = dl.DrumLoss()
    opt = nn.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss, _ = fn(model(x, hvo), hvo)
        model.backward(fn.backward())
        opt.step()
        opt.zero_grad()
        losses.append(loss)
    assert losses[-1] < 0.6 * losses[0], losses[::6]


def test_generate_shapes_fixed_hits_and_continuity():
    model = _tiny()
    model.eval()
    x, hvo, rng = _data(B=2, T=10)
    out = model.generate(x, 10, threshold=0.5)
    for k in ("H", "V", "O", "v_raw", "o_raw", "p"):
        assert out[k].shape == (2, 10, 9), k
    assert set(np.unique(out["H"])) <= {0.0, 1.0}
    assert np.all(out["V"][out["H"] == 0] == 0) and np.all(np.abs(out["o_raw"]) < 0.5)
    np.testing.assert_array_equal(out["H"], (out["p"] > 0.5).astype(np.float32))
    given = model.generate(x, 10, hits=hvo[..., :9])
    np.testing.assert_array_equal(given["H"], hvo[..., :9])
    np.testing.assert_allclose(given["V"], given["v_raw"] * hvo[..., :9], rtol=1e-6)
    sampled = model.generate(x, 10, temperature=1.0, rng=np.random.default_rng(0))
    again = model.generate(x, 10, temperature=1.0, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(sampled["H"], again["H"])
    start = model.generate(x, 4, start=np.ones((2, 27)))
    assert not np.allclose(start["p"], out["p"][:, :4])      # the previous step is an input
    # teacher-forced and free-running decoding agree at the first step (same inputs there)
    with nn.no_grad():
        logits = model(x, hvo[:, :8])[0]
    np.testing.assert_allclose(nn.functions.sigmoid(logits[:, 0]), out["p"][:, 0], rtol=1e-6)
    ll = model.log_likelihood(x, np.concatenate([out["H"], out["V"], out["O"]], -1)[:, :8])
    assert ll.shape == (2,) and np.all(ll < 0)
    assert not any(layer._saved for _, layer in model.named_layers())


def test_drum_metrics_on_a_hand_made_case():
    hvo = np.zeros((1, 2, 27))
    hvo[0, 0, 0] = hvo[0, 1, 1] = 1
    hvo[0, 0, 9], hvo[0, 1, 10] = 0.5, 1.0
    hvo[0, 0, 18] = 0.1
    H = np.zeros((1, 2, 9))
    H[0, 0, 0] = H[0, 0, 2] = 1                      # one hit right, one wrong, one missed
    V = np.full((1, 2, 9), 0.75)
    O = np.zeros((1, 2, 9))
    m = dl.drum_metrics(H, V, O, hvo)
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == 0.5
    assert m["accuracy"] == pytest.approx(16 / 18)
    assert m["velocity_mse_hits"] == pytest.approx(((0.75 - 0.5) ** 2 + 1.0) / 2)  # missed hit: 0
    m2 = dl.drum_metrics(H, V, O, hvo, v_raw=V, o_raw=O)
    assert m2["velocity_mse_hits"] == pytest.approx(((0.75 - 0.5) ** 2 + 0.25 ** 2) / 2)
    assert m2["timing_mse_hits"] == pytest.approx(0.01 / 2)
    assert m2["velocity_mse_all"] == pytest.approx((0.25 ** 2 + 0.75 ** 2 + 1.0) / 18)


def test_transfer_of_the_decoder_side():
    src = _tiny(inputs=(9,))
    dst = _tiny()
    for p in src.parameters():
        p.data += 1.0
    copied = dm.transfer_decoder(src, dst)
    assert any(n.startswith("decoder.") for n in copied)
    assert any(n.startswith("head_h") for n in copied)
    assert not any(n.startswith(("encoders", "merge")) for n in copied)
    sd, dd_ = src.state_dict(), dst.state_dict()
    for n in copied:
        np.testing.assert_array_equal(sd[n], dd_[n])
    with pytest.raises(ValueError, match="same model preset"):
        dm.transfer_decoder(src, _tiny(latent=5))
    cfg = dm.DrumConfig.from_json(dst.cfg.to_json())
    assert cfg == dst.cfg
    with pytest.raises(ValueError, match="unknown model preset"):
        dm.build_model("huge")
    with pytest.raises(ValueError, match="whole number of 4-step sub-sequences"):
        dst([np.zeros((1, 6, f)) for f in IN], np.zeros((1, 6, 27)))


# ----------------------------------------------------------------------------------------------
# Training for free running: two conductor levels, stacked encoders, the decoder's extra
# inputs, scheduled sampling
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("options", [
    dict(conductor_levels=2, phrase_subs=2),
    dict(enc_layers=2),
    dict(position=True, local=True),
    dict(position=True, bar_rhythm=True),
    dict(conductor_levels=2, phrase_subs=3, enc_layers=2, position=True),
])
def test_gradient_check_of_the_free_running_options(options):
    """Every option's backward, (15)-(22) with (18b), the stacked encoder and the extra decoder
    inputs, against central differences (float64, random directions)."""
    model = _tiny(**options)
    x, hvo, rng = _data_away_from_kinks(model, 2, model.block_steps * 2, seed=4)
    eps = rng.standard_normal((2, model.cfg.latent))
    res = check_layer(_Whole(model, x, eps), [hvo], check_inputs=[], max_elements=16,
                      n_directions=2, tol=1e-6)
    assert len(res) == len(model.parameters())
    names = {r.name.split("parameter ")[-1].split(" ")[0] for r in res}
    if options.get("conductor_levels") == 2:
        assert "model.sub_conductor.weight_ih_l0" in names
    if options.get("enc_layers") == 2:
        assert "model.encoders.1.lstm.weight_hh_l1_reverse" in names
    assert max(r.max_rel_error for r in res) < 1e-6


def test_two_conductor_levels_give_one_vector_per_bar_under_each_phrase():
    model = _tiny(conductor_levels=2, phrase_subs=2)
    z = np.random.default_rng(0).standard_normal((2, model.cfg.latent))
    with nn.no_grad():
        c, s = model.conduct(z, 5)                  # 3 phrases of 2, the last one cut
        c6, _ = model.conduct(z, 6)
    assert c.shape == (2, 5, model.cfg.conductor) and s.shape[:2] == (2, 5)
    np.testing.assert_allclose(c, c6[:, :5])
    assert not np.allclose(c6[:, 0], c6[:, 2])      # phrases differ: p_j is the input
    # the same vector starts each phrase's sub-conductor from a zero state, fed p_j: the first
    # bar of every phrase depends on p_j alone
    with nn.no_grad():
        p, _ = model.conductor(np.repeat(z[:, None], 3, axis=1))
        first, _ = model.sub_conductor(p.reshape(6, 1, -1))
    np.testing.assert_allclose(c6[:, ::2], first.reshape(2, 3, -1), rtol=1e-10)
    with pytest.raises(ValueError, match="whole number of 8-step phrases"):
        model([np.zeros((1, 12, f)) for f in IN], np.zeros((1, 12, 27)))


def test_extras_are_the_bar_position_and_the_onsets():
    model = _tiny(position=True, local=True)
    x = [np.zeros((2, 20, f)) for f in IN]
    x[1][0, 3, :3] = 1                      # 3 onsets of stream 1 at step 3
    x[2][1, 17, :] = 1                      # 6 onsets: clipped to 4
    e = model.extras(x, 20, 2)
    assert e.shape == (2, 20, 16 + 3)
    np.testing.assert_array_equal(np.argmax(e[0, :, :16], -1), np.arange(20) % 16)
    assert e[0, 3, 17] == 0.75 and e[1, 17, 18] == 1.0 and e[..., 16:].sum() == 1.75
    assert model.extras(x, 24, 2).shape == (2, 24, 19)       # past the inputs' end: zeros


def test_bar_rhythm_is_each_streams_onsets_over_the_bar_of_the_step():
    """r_t: for every step of a bar, the same 16 x 3 onsets of that bar (zeros past the
    inputs' end), after pos_t and a_t."""
    model = _tiny(position=True, local=True, bar_rhythm=True)
    x = [np.zeros((2, 40, f)) for f in IN]
    x[1][0, 19, :3] = 1                     # bar 1 (steps 16-31), its step 3, stream 1: 0.75
    x[0][1, 33, :] = 1                      # bar 2 (steps 32-47, the inputs end at 40): 1.0
    e = model.extras(x, 48, 2)
    assert e.shape == (2, 48, 16 + 3 + 48) and model.n_extra == 67
    r = e[..., 19:].reshape(2, 48, 3, 16)
    np.testing.assert_array_equal(r[0, 16:32, 1, 3], 0.75)      # every step of bar 1 reads it
    assert r[0, :16].sum() == 0 and r[0, 32:].sum() == 0 and r[0, 16:32].sum() == 16 * 0.75
    np.testing.assert_array_equal(r[1, 32:48, 0, 1], 1.0)
    assert r[1].sum() == 16 * 1.0
    # a_t is the same onsets read at the step itself
    np.testing.assert_array_equal(e[0, :, 17], [0.75 if t == 19 else 0 for t in range(48)])
    # a window that starts mid-bar: bar boundaries follow start_step
    e4 = model.extras([a[:, 4:] for a in x], 36, 2, start_step=4)
    r4 = e4[..., 19:].reshape(2, 36, 3, 16)
    np.testing.assert_array_equal(r4[0, 12:28, 1, 3], 0.75)     # steps 16..31 of the song


def test_scheduled_sampling_feeds_the_models_own_outputs():
    model = _tiny(position=True)
    model.train()
    x, hvo, rng = _data(B=3, T=16, seed=5)
    eps = np.zeros((3, model.cfg.latent))
    true_prev = np.concatenate([np.zeros((3, 1, 27)), hvo[:, :-1]], 1)
    with nn.no_grad():
        model(x, hvo, eps, sampling=dm.Sampling(1.0, np.random.default_rng(0)))
    np.testing.assert_array_equal(model.last_prev, true_prev)      # ratio 1: teacher forcing
    # ratio 0, threshold mode: the fed drums are the free-running generation's own outputs
    with nn.no_grad():
        model(x, hvo, eps, sampling=dm.Sampling(0.0, np.random.default_rng(0), "threshold", 0.4))
    fed = model.last_prev
    model.eval()
    gen = model.generate(x, 16, z=model.encode(x)[0], threshold=0.4)
    own = np.concatenate([gen["H"], gen["V"], gen["O"]], -1)
    np.testing.assert_allclose(fed[:, 1:], own[:, :-1], rtol=1e-6, atol=1e-12)
    assert np.all(fed[:, 0] == 0)
    # a mix: each step is the truth or the model's own, and the training pass reproduces the
    # step-by-step pass's states (same outputs as a forward fed those drums as data)
    model.train()
    with nn.no_grad():
        out = model(x, hvo, eps, sampling=dm.Sampling(0.5, np.random.default_rng(1)))
        fed = model.last_prev
        again = model(x, hvo, eps, prev=fed)
    is_true = np.all(fed == true_prev, axis=-1)
    assert 0 < is_true[:, 1:].mean() < 1
    for a, b in zip(out, again):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_scheduled_sampling_gradient_treats_the_fed_drums_as_data():
    """The backward after scheduled sampling is the teacher-forced backward on the fed drums."""
    model = _tiny(conductor_levels=2)
    model.train()
    x, hvo, rng = _data_away_from_kinks(model, 2, 16, seed=6)
    eps = rng.standard_normal((2, model.cfg.latent))
    out = model(x, hvo, eps, sampling=dm.Sampling(0.3, np.random.default_rng(2)))
    fed = model.last_prev
    dys = [rng.standard_normal(o.shape) for o in out]
    model.backward(tuple(dys))
    g1 = {n: p.grad.copy() for n, p in model.named_parameters()}
    model.zero_grad()
    out2 = model(x, hvo, eps, prev=fed)
    model.backward(tuple(dys))
    for n, p in model.named_parameters():
        np.testing.assert_allclose(g1[n], p.grad, rtol=1e-10, atol=1e-14, err_msg=n)
    for a, b in zip(out, out2):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_transfer_into_a_model_with_more_decoder_inputs():
    src = _tiny(inputs=(9,), position=True)
    dst = _tiny(position=True, local=True)
    for p in src.parameters():
        p.data += 1.0
    before = dst.decoder.weight_ih_l0.data.copy()
    dm.transfer_decoder(src, dst)
    n = 27 + src.cfg.conductor + 16
    np.testing.assert_array_equal(dst.decoder.weight_ih_l0.data[:, :n],
                                  src.decoder.weight_ih_l0.data)
    np.testing.assert_array_equal(dst.decoder.weight_ih_l0.data[:, n:], before[:, n:])
    with pytest.raises(ValueError, match="same model preset"):
        dm.transfer_decoder(src, _tiny(local=True))      # src reads pos_t, dst does not


def test_generate_with_one_threshold_per_class():
    """A threshold per class: the hits of each class are its own probabilities above its own
    threshold (a threshold of 1 silences a class, 0 makes it play at every step)."""
    model = _tiny(local=True)
    model.eval()
    x, _, _ = _data(B=2, T=8, seed=7)
    common = model.generate(x, 8, threshold=0.5)
    thr = np.full(9, 0.5)
    np.testing.assert_array_equal(model.generate(x, 8, threshold=thr)["H"], common["H"])
    thr[[1, 4]] = 1.0, 0.0
    gen = model.generate(x, 8, threshold=thr)
    assert gen["H"][..., 1].sum() == 0 and gen["H"][..., 4].all()
    np.testing.assert_array_equal(gen["H"], (gen["p"] > thr).astype(np.float32))


def test_a_decoder_without_feedback_generates_as_it_trains():
    """feedback=False: zeros in place of the previous drums in (7), in training and generation:
    the free-running probabilities are the teacher-forced ones, whatever drums are given."""
    model = _tiny(feedback=False, position=True, local=True)
    model.eval()
    x, hvo, rng = _data(B=2, T=8, seed=8)
    with nn.no_grad():
        logits, v, _, _, _ = model(x, hvo)
        other, _, _, _, _ = model(x, rng.random(hvo.shape))
    np.testing.assert_allclose(other, logits, rtol=1e-12)
    gen = model.generate(x, 8, threshold=0.5)
    np.testing.assert_allclose(gen["p"], 1 / (1 + np.exp(-logits)), rtol=1e-6)
    np.testing.assert_allclose(gen["v_raw"], v, rtol=1e-6)
    assert np.all(model.last_prev == 0)
    # with feedback (the default) the given drums matter
    fb = _tiny(position=True, local=True)
    fb.eval()
    with nn.no_grad():
        a, *_ = fb(x, hvo)
        b, *_ = fb(x, rng.random(hvo.shape))
    assert not np.allclose(a, b)
