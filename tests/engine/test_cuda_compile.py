"""Every CUDA kernel the engine ships compiles for sm_90 (H100/H200): checked without a GPU.

The kernels are kept as data (``backend.ElementwiseSpec`` / ``RawSpec``, listed in each
``nnscratch/kernels/cuda/*.py`` module's ``SPECS``). For each one, and for float32 and float64,
and for contiguous and strided array arguments, this builds the full CUDA source that CuPy would
compile at the first launch on a GPU, with CuPy's own code generator (the kernel's typed
parameters, the ``CArray``/``CIndexer`` declarations, CuPy's headers) and CuPy's own compiler
options (captured where CuPy hands them to its compiler), and compiles it for sm_90 with nvcc or
NVRTC, whichever exists here (both, where both do). A kernel whose body is deliberately broken
must fail the same check (the negative control).

Layouts, as CuPy launches them: with every non-raw array C-contiguous CuPy collapses them to
1-D (``CArray<T, 1, 1, 1>``, ``CIndexer<1>``); with strided views (one direction's half of a
bidirectional dy, say) it keeps 2-D non-contiguous arrays (``CArray<T, 2, 0, 1>``,
``CIndexer<2>``). ``raw`` arrays keep the dimensions the engine launches them with
(``ElementwiseSpec.raw_ndim``). A RawKernel takes pointers, so it has no layouts: its callers
make its arrays contiguous.

To keep the time modest, the kernels of one dtype and layout are compiled together: one
translation unit holding CuPy's headers once and each kernel's generated code in a namespace of
its own (only the ``typedef`` of its type parameters needs that); one kernel is also compiled
alone, exactly as CuPy's source, byte for byte.

Needs the cupy-cuda13x package (it imports without a GPU or driver) and a CUDA compiler (CUDA
13's nvcc on PATH or under /usr/local/cuda*/bin, or NVRTC). Without any compiler the tests are
skipped with that reason; without cupy they fail, since the sources cannot be built.
"""
from __future__ import annotations

import glob
import importlib
import os
import pkgutil
import re
import shutil
import struct

import numpy as np
import pytest

import nnscratch.kernels.cuda as cuda_kernels
from nnscratch.backend import ElementwiseSpec, RawSpec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARCH = "90"
DTYPES = ("float32", "float64")
LAYOUTS = ("contiguous", "strided")


# ----------------------------------------------------------------------------------------------
# Which kernels: every spec of every module under nnscratch/kernels/cuda, and nothing elsewhere
# ----------------------------------------------------------------------------------------------
def shipped_specs() -> list:
    specs = []
    for info in pkgutil.iter_modules(cuda_kernels.__path__):
        module = importlib.import_module(f"{cuda_kernels.__name__}.{info.name}")
        declared = getattr(module, "SPECS", None)
        assert declared is not None, f"{module.__name__} must list its kernels in SPECS"
        defined = [v for v in vars(module).values() if isinstance(v, (ElementwiseSpec, RawSpec))]
        missing = [s.name for s in defined if s not in declared]
        assert not missing, f"{module.__name__}: kernels not in SPECS: {missing}"
        specs.extend(declared)
    return specs


def test_every_kernel_is_a_listed_spec():
    specs = shipped_specs()
    names = sorted(s.name for s in specs)
    assert len(names) == len(set(names)), names
    assert {"nnscratch_lstm_forward_step", "nnscratch_lstm_backward_step",
            "nnscratch_adam_update", "nnscratch_xent_forward",
            "nnscratch_xent_backward"} <= set(names)
    # no kernel is built anywhere else (a kernel outside the specs would escape these checks)
    pattern = re.compile(r"\b(ElementwiseKernel|RawKernel|RawModule|ReductionKernel)\s*\(|"
                         r"\bcupy\.fuse\b|@fuse\b")
    offenders = []
    for path in glob.glob(os.path.join(ROOT, "nnscratch", "**", "*.py"), recursive=True):
        if os.path.basename(path) == "backend.py":
            continue
        with open(path, encoding="utf-8") as f:
            for k, line in enumerate(f, 1):
                if pattern.search(line) and not line.lstrip().startswith(("#", "*", '"')):
                    offenders.append(f"{os.path.relpath(path, ROOT)}:{k}: {line.strip()}")
    assert not offenders, "kernels built outside backend.py's specs:\n" + "\n".join(offenders)


# ----------------------------------------------------------------------------------------------
# CuPy's sources and options, built without a GPU
# ----------------------------------------------------------------------------------------------
def _cupy():
    try:
        import cupy
        from cupy._core import _carray, _kernel, _scalar, core
    except ImportError as exc:
        pytest.fail(f"cupy-cuda13x is needed to build the kernels' sources as CuPy does "
                    f"(pip install -e '.[dev]' installs it): {exc}", pytrace=False)
    return cupy, _kernel, _carray, _scalar, core


class _Captured(Exception):
    pass


def _as_cupy_compiles(code: str, options: tuple, prepend_headers: bool) -> tuple[str, tuple]:
    """The (source, options) that CuPy hands to its compiler for ``code``: its headers
    prepended (elementwise kernels) and its options assembled (include paths, C++17), captured
    at ``cupy.cuda.compiler._compile_module_with_cache`` (the step after which only the
    compiler runs), plus the ``-ftz=true`` that CuPy adds there."""
    cupy, _, _, _, core = _cupy()
    compiler = cupy.cuda.compiler
    captured = {}

    def capture(source, options=(), *args, **kwargs):
        captured["source"], captured["options"] = source, tuple(options)
        raise _Captured

    original = compiler._compile_module_with_cache
    compiler._compile_module_with_cache = capture
    try:
        core.compile_with_cache(code, options, prepend_cupy_headers=prepend_headers,
                                backend="nvrtc", translate_cucomplex=False,
                                enable_cooperative_groups=False, name_expressions=None,
                                log_stream=None, jitify=False)
    except _Captured:
        pass
    finally:
        compiler._compile_module_with_cache = original
    assert captured, "CuPy did not reach its compiler"
    return captured["source"], captured["options"] + ("-ftz=true",)


def elementwise_code(spec: ElementwiseSpec, dtype: str, layout: str, name: str | None = None,
                     operation: str | None = None) -> str:
    """The kernel code CuPy generates for ``spec`` launched with arrays of ``dtype`` in
    ``layout`` (what ElementwiseKernel.__call__ builds before compiling), without its headers.
    Non-raw parameters with a concrete type (``int64 H``, ``float64 lr``) are the scalars the
    engine passes; non-raw ``T`` parameters are arrays."""
    cupy, _kernel, _carray, _scalar, _ = _cupy()
    kernel = cupy.ElementwiseKernel(spec.in_params, spec.out_params,
                                    operation or spec.operation, name or spec.name,
                                    preamble=spec.preamble)
    strided = layout == "strided"
    raw_ndim = dict(spec.raw_ndim)
    arginfos, in_types, out_types = [], [], []
    for k, p in enumerate(kernel.params):
        if p.name == "_ind":
            arginfos.append(_kernel._ArgInfo(2, _carray.Indexer, None, 2 if strided else 1,
                                             True, True))
            continue
        if p.dtype is not None and not p.raw:  # a scalar, typed by the parameter
            arginfos.append(_kernel._ArgInfo(3, _scalar.CScalar, np.dtype(p.dtype), 0, True,
                                             True))
            arg_type = None
        else:
            arg_type = np.dtype(p.dtype) if p.dtype is not None else np.dtype(dtype)
            if p.raw:
                ndim, contiguous = raw_ndim.get(p.name, 1), True
            else:
                ndim, contiguous = (2, False) if strided else (1, True)
            arginfos.append(_kernel._ArgInfo(1, cupy.ndarray, arg_type, ndim, contiguous, True))
        (in_types if k < kernel.nin else out_types).append(arg_type)
    _, _, type_map = kernel._decide_params_type(tuple(in_types), tuple(out_types))
    return _kernel._get_elementwise_kernel_code(tuple(arginfos), type_map, kernel.params,
                                                kernel.operation, kernel.name, kernel.preamble)


def build_unit(specs, dtype: str, layout: str, broken: str | None = None) -> tuple[str, tuple,
                                                                                   list[str]]:
    """One translation unit with every kernel of ``specs`` for ``dtype`` and ``layout``:
    (source, options, the kernel names it defines). ``broken`` replaces the first spec's body
    (the negative control)."""
    header, options, parts, names = None, None, [], []
    for k, spec in enumerate(specs):
        if isinstance(spec, RawSpec):
            code = spec.code(dtype)
            name = spec.function_name(dtype)
            source, opts = _as_cupy_compiles(code, spec.options, prepend_headers=False)
            assert source == code
        else:
            name = f"{spec.name}_{dtype}_{layout}"
            code = elementwise_code(spec, dtype, layout, name=name,
                                    operation=broken if (broken and k == 0) else None)
            source, opts = _as_cupy_compiles(code, (), prepend_headers=True)
            assert source.endswith(code)
            prefix = source[:len(source) - len(code)]
            assert header in (None, prefix), "CuPy's headers differ between kernels"
            header = prefix
        assert options in (None, opts), f"compiler options differ: {options} vs {opts}"
        options = opts
        parts.append(f"namespace nnscratch_k{k} {{\n{code}\n}}  // namespace nnscratch_k{k}\n")
        names.append(name)
    return (header or "") + "\n".join(parts), options, names


# ----------------------------------------------------------------------------------------------
# The compilers
# ----------------------------------------------------------------------------------------------
def _nvcc_path() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/local/cuda*/bin/nvcc"), reverse=True)
    return candidates[0] if candidates else None


def _nvrtc_ok() -> bool:
    try:
        from cupy.cuda import nvrtc

        nvrtc.getVersion()
        return True
    except Exception:
        return False


def available_compilers() -> list[str]:
    found = []
    if _nvcc_path():
        found.append("nvcc")
    try:
        import cupy  # noqa: F401
    except ImportError:
        return found
    if _nvrtc_ok():
        found.append("nvrtc")
    return found


def compile_unit(compiler: str, source: str, options: tuple) -> bytes:
    """Compile for sm_90 into a cubin, as CuPy does, raising its CompileException on errors.

    nvcc: CuPy's own ``compile_using_nvcc`` (``-gencode=arch=compute_90,code=sm_90 --cubin``).
    NVRTC: CuPy's ``_NVRTCProgram`` with the options its NVRTC path adds (``-arch=sm_90``, which
    it derives from the device, and ``--device-as-default-execution-space``): its public wrapper
    asks the driver for the device and so cannot run without one.
    """
    compiler_module = _cupy()[0].cuda.compiler
    if compiler == "nvcc":
        os.environ.setdefault("NVCC", _nvcc_path())
        return compiler_module.compile_using_nvcc(source, options, arch=ARCH)
    program = compiler_module._NVRTCProgram(source, "kern.cu", method="cubin")
    binary, _ = program.compile(options + (f"-arch=sm_{ARCH}",
                                           "--device-as-default-execution-space"), None)
    return binary


def _cubin_sm(binary: bytes) -> int | None:
    """The SM version of a cubin (a CUDA ELF file: e_flags bits 8-15), None if not a cubin."""
    if binary[:4] != b"\x7fELF":
        return None
    return (struct.unpack_from("<I", binary, 0x30)[0] >> 8) & 0xFF


COMPILERS = available_compilers()
needs_compiler = pytest.mark.skipif(
    not COMPILERS, reason="no CUDA compiler here (no nvcc on PATH or in /usr/local/cuda*/bin, "
                          "no NVRTC library): the CUDA sources cannot be compiled")


def _compilers_param():
    return COMPILERS or ["none"]


# ----------------------------------------------------------------------------------------------
# The checks
# ----------------------------------------------------------------------------------------------
@needs_compiler
@pytest.mark.parametrize("compiler", _compilers_param())
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_kernel_compiles_for_sm90(compiler, dtype, layout):
    specs = [s for s in shipped_specs() if isinstance(s, ElementwiseSpec) or layout == LAYOUTS[0]]
    source, options, names = build_unit(specs, dtype, layout)
    binary = compile_unit(compiler, source, options)
    assert isinstance(binary, bytes) and len(binary) > 0
    for name in names:  # every kernel is in the binary (nothing was skipped by the build)
        assert name.encode() in binary, f"{name} missing from the {compiler} output"
    assert _cubin_sm(binary) == int(ARCH), "not machine code for sm_90"


@needs_compiler
@pytest.mark.parametrize("compiler", _compilers_param())
def test_one_kernel_compiles_alone_exactly_as_cupy_builds_it(compiler):
    from nnscratch.kernels.cuda.lstm import FORWARD

    code = elementwise_code(FORWARD, "float32", "strided")
    source, options = _as_cupy_compiles(code, (), prepend_headers=True)
    assert "#include <cupy/carray.cuh>" in source and "--std=c++17" in options
    assert "CArray<float, 2, 0, 1> _raw_c_prev" in source  # a strided (B, H) argument
    assert FORWARD.name.encode() in compile_unit(compiler, source, options)


@needs_compiler
@pytest.mark.parametrize("compiler", _compilers_param())
def test_a_broken_kernel_body_fails_the_same_check(compiler):
    """The negative control: the LSTM forward kernel with one undefined name in its body."""
    from nnscratch.kernels.cuda.lstm import FORWARD

    cupy = _cupy()[0]
    broken = FORWARD.operation.replace("const T gg = tanh(a_g);", "const T gg = tanhh(a_g);")
    assert broken != FORWARD.operation
    specs = [FORWARD] + [s for s in shipped_specs() if s is not FORWARD]
    source, options, _ = build_unit(specs, "float32", "contiguous", broken=broken)
    with pytest.raises(cupy.cuda.compiler.CompileException, match="tanhh"):
        compile_unit(compiler, source, options)


def test_sources_name_the_types_and_layouts_as_cupy_launches_them():
    """The generated parameter lists (a check of the layout emulation, no compiler needed)."""
    from nnscratch.kernels.cuda.lstm import BACKWARD, FORWARD
    from nnscratch.kernels.cuda.optim import ADAM

    fwd = elementwise_code(FORWARD, "float64", "contiguous")
    assert "typedef double T;" in fwd
    assert "const CArray<double, 2, 1, 1> px" in fwd         # raw (B, 4H)
    assert "const CArray<double, 1, 1, 1> b" in fwd          # raw (4H,)
    assert "const long long H" in fwd                        # the scalar int64 H
    assert "CIndexer<1, 1> _ind" in fwd
    bwd = elementwise_code(BACKWARD, "float32", "strided")
    assert "const CArray<float, 2, 0, 1> _raw_dy" in bwd and "CIndexer<2, 1> _ind" in bwd
    adam = elementwise_code(ADAM, "float32", "contiguous")
    assert "const double lr" in adam and "const bool decoupled" in adam
