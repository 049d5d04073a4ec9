"""Hypothesis strategies shared by the gradient checks: shapes of 1-4 dims of size 1-6, values
in [-2, 2], float64."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

FLOATS = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False, width=64)


def shapes(min_dims=1, max_dims=4, min_side=1, max_side=6):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def arrays(shape=None, elements=FLOATS, **shape_kw):
    """float64 arrays of a given shape or a drawn one."""
    return hnp.arrays(np.float64, shape if shape is not None else shapes(**shape_kw),
                      elements=elements)


def away_from_zero(a, margin=0.05):
    """Push values out of (-margin, margin), to keep kinks (ReLU at 0) away from the stencil."""
    a = np.array(a, dtype=np.float64)
    small = np.abs(a) < margin
    a[small] = np.where(a[small] >= 0, margin, -margin) + a[small]
    return a


@st.composite
def matrix_and_width(draw, max_rows=6, max_cols=6):
    """An input batch (rows, in) and an output width."""
    rows = draw(st.integers(1, max_rows))
    n_in = draw(st.integers(1, max_cols))
    n_out = draw(st.integers(1, max_cols))
    x = draw(arrays((rows, n_in)))
    return x, n_out


@st.composite
def leading_shape_and_width(draw):
    """Shapes (..., in) with 1-3 leading axes, for Linear."""
    lead = draw(shapes(min_dims=1, max_dims=3))
    n_in = draw(st.integers(1, 6))
    return lead, n_in
