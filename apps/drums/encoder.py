"""The drum model's encoder (apps/drums/model.py, equation (1) of docs/derivations/drum_vae.md):
Conv1D -> ReLU -> Conv1D -> ReLU -> bidirectional LSTM over one input stream, and its backward
(22)."""
from __future__ import annotations

import nnscratch as nn
from nnscratch.layers.conv import Conv1D
from nnscratch.layers.lstm import LSTM


class CNNLSTMEncoder(nn.Layer):
    """Conv1D -> ReLU -> Conv1D (stride s) -> ReLU -> bidirectional LSTM (``layers`` stacked);
    the code is the top layer's final hidden state of both directions,
    [h_forward(T) ; h_reverse(1)].  Equation (1).

    Shapes: x (B, T, F) -> e (B, 2H). ``backward(de)`` returns None (its input is data).
    """

    def __init__(self, in_features: int, channels: int, hidden: int, kernel: int = 3,
                 stride: int = 1, forget_bias: float = 1.0, layers: int = 1):
        super().__init__()
        pad = kernel // 2
        self.conv1 = Conv1D(in_features, channels, kernel, padding=pad, init="he_uniform")
        self.act1 = nn.ReLU()
        self.conv2 = Conv1D(channels, channels, kernel, stride=stride, padding=pad,
                            init="he_uniform")
        self.act2 = nn.ReLU()
        self.lstm = LSTM(channels, hidden, num_layers=layers, bidirectional=True,
                         forget_bias=forget_bias)
        self.conv1.input_grad = False           # x is data: no dx
        self.hidden, self.layers = hidden, layers

    def forward(self, x):
        xp = nn.get_array_module(x)
        a = self.act1(self.conv1(xp.ascontiguousarray(x.transpose(0, 2, 1))))   # (B, C, T)
        a = self.act2(self.conv2(a))                                              # (B, C, T')
        _, (h_n, _) = self.lstm(xp.ascontiguousarray(a.transpose(0, 2, 1)))      # (2 L, B, H)
        return xp.concatenate([h_n[-2], h_n[-1]], axis=-1)                        # (1) top layer

    def backward(self, de):
        xp = nn.get_array_module(de)
        H = self.hidden
        dh_n = xp.zeros((2 * self.layers, de.shape[0], H), de.dtype)
        dh_n[-2], dh_n[-1] = de[:, :H], de[:, H:]          # (22) the top layer's two directions
        da, _ = self.lstm.backward(None, (dh_n, None))       # (22) BPTT from the final states
        da = self.conv2.backward(self.act2.backward(xp.ascontiguousarray(da.transpose(0, 2, 1))))
        self.conv1.backward(self.act1.backward(da))          # parameter gradients only
        return None


__all__ = ["CNNLSTMEncoder"]
