"""CuPy kernel sources and launchers (GPU), compiled once and cached by nnscratch.backend."""
