"""numba kernels (CPU). Imported lazily; compiled on first use and cached on disk."""
