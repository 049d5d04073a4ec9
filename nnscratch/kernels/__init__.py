"""Fused fast paths beside the readable NumPy code: ``cpu/`` (numba) and ``cuda/`` (CuPy kernels).

These modules are imported lazily by the ops that use them, so numba's import and JIT time and
cupy's absence never touch users of the plain path. Each kernel repeats the equation numbers of
the derivation it implements.
"""
