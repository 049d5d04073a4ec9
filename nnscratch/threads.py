"""How many threads the CPU engine uses: the cores that other work leaves free.

Why: OpenBLAS starts one thread per core, and a thread that waits for its partner in a GEMM
spins. Two such processes on 2 cores starve each other: the ABC trainer ran 28x slower beside a
second copy of itself (issue 21), and PyTorch collapses the same way. One thread each would have
kept both at full speed. So the engine decides, instead of asking the user to set
``OPENBLAS_NUM_THREADS`` by hand:

* ``NNSCRATCH_THREADS=N`` (N >= 1): N threads, fixed; the policy below is off.
* Otherwise (unset, or ``auto``), ``update()`` reads how much CPU time *other* processes took on
  this process's cores since the last check: the busy time of those cores (``/proc/stat``; where
  there is none, the 1-minute load average) minus this process's own CPU time
  (``time.process_time``, all its threads, OpenBLAS's spinning ones included). The threads are
  the cores left, ``cores - ceil(others - 0.3)``: a core counts as taken when another process
  kept it busy more than 30% of the interval (a thread sharing a core stalls every GEMM it takes
  part in). At least 1; at most ``OPENBLAS_NUM_THREADS`` or ``OMP_NUM_THREADS`` when the user
  set one (a cap, as they asked).
* ``update()`` is cheap: it returns at once unless ``interval`` seconds (2 by default) have passed
  since the last check; a check reads ``/proc/stat`` (~20 us) and changes the BLAS thread count
  through threadpoolctl only when the decision changes. ``Optimizer.step`` calls it once per
  training step, and the convolution layers once per forward, so a job adapts within a few
  seconds when another starts or ends.
* Never more threads than help for the work at hand: ``threads_for(flops)`` caps the count for
  one operation by its size (a GEMM under ``MIN_FLOPS_PER_THREAD`` per thread runs faster on one
  thread than split, the hand-off costing more than it saves), and ``limit(n)`` sets the BLAS
  threads for a block of code (the convolutions run their per-example GEMMs on one BLAS thread
  each, from ``parallel_for``'s workers).
* numba kernels stay serial (no ``parallel=True``); ``parallel_for`` runs plain Python callables
  that release the GIL (numba ``nogil`` kernels, NumPy's BLAS calls) on a small pool of threads,
  as many as the policy allows.

Only BLAS libraries are touched (threadpoolctl's ``user_api='blas'``: NumPy's and SciPy's
OpenBLAS), never OpenMP runtimes such as PyTorch's.
"""
from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

ENV = "NNSCRATCH_THREADS"

#: a core counts as taken by other work above this fraction of busy time
TOLERANCE = 0.3

#: below this many flops per thread, a second thread costs more than it saves (the hand-off
#: between OpenBLAS threads, or between Python workers, is some 10-20 us)
MIN_FLOPS_PER_THREAD = 4e6


def available_cores() -> int:
    """The CPUs this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value or value.lower() == "auto":
        return None
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a positive integer or 'auto', got {value!r}") from None
    if n < 1:
        raise ValueError(f"{name} must be a positive integer or 'auto', got {value!r}")
    return n


def user_cap() -> int | None:
    """OPENBLAS_NUM_THREADS (else OMP_NUM_THREADS) when the user set one: never exceeded."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        try:
            n = _env_int(name)
        except ValueError:
            continue
        if n is not None:
            return n
    return None


# ----------------------------------------------------------------------------------------------
# Measuring: how busy are our cores with other work
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """Counters at one instant: wall clock (s), CPU-seconds all processes spent on our cores
    since boot (None without /proc/stat), CPU-seconds this process spent, 1-minute load."""

    wall: float
    busy: float | None
    own: float
    load1: float


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(stat_text: str | None) -> str | None:
    """``stat_text`` if given, else the text of /proc/stat (None where there is none)."""
    if stat_text is not None:
        return stat_text
    try:
        with open("/proc/stat") as f:
            return f.read()
    except OSError:
        return None


def busy_seconds(cpus, stat_text: str | None = None) -> float | None:
    """CPU-seconds the given CPUs (None: all) spent busy since boot: user, nice, system, irq,
    softirq and steal (time the hypervisor gave to someone else) from /proc/stat (or
    ``stat_text``); idle and iowait count as free. None without /proc/stat."""
    stat_text = _proc_stat(stat_text)
    if stat_text is None:
        return None
    lines = stat_text.splitlines()
    total = 0
    found = False
    for line in lines:
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *fields = line.split()
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        v = [int(x) for x in fields[:8]] + [0] * (8 - len(fields[:8]))
        total += v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
        found = True
    return total / _TICK if found else None


def read_sample() -> Sample:
    try:
        cpus = os.sched_getaffinity(0)
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cpus = None
    try:
        load1 = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover
        load1 = 0.0
    return Sample(time.monotonic(), busy_seconds(cpus), time.process_time(), load1)


def others_busy(before: Sample, after: Sample) -> float | None:
    """Cores' worth of CPU other processes used between two samples (>= 0); None if the
    interval is too short to say."""
    dt = after.wall - before.wall
    if dt < 0.05:
        return None
    own = (after.own - before.own) / dt
    if after.busy is not None and before.busy is not None:
        return max(0.0, (after.busy - before.busy) / dt - own)
    # no /proc/stat: the load average counts runnable threads, ours included
    return max(0.0, after.load1 - own)


def decide(others: float, cores: int, cap: int | None = None,
           tolerance: float = TOLERANCE) -> int:
    """Threads for this process: the cores not taken by ``others`` cores' worth of other work,
    at least 1, at most ``cap``."""
    taken = math.ceil(others - tolerance) if others > tolerance else 0
    n = max(1, cores - taken)
    return max(1, min(n, cap)) if cap is not None else n


# ----------------------------------------------------------------------------------------------
# Applying: the BLAS libraries' thread counts through threadpoolctl
# ----------------------------------------------------------------------------------------------
class _Blas:
    """The loaded BLAS libraries (found once, looked for again when asked to refresh)."""

    def __init__(self):
        self._libs = None

    def libs(self, refresh: bool = False):
        if self._libs is None or refresh:
            try:
                from threadpoolctl import ThreadpoolController  # noqa: PLC0415
            except ImportError:  # pragma: no cover - threadpoolctl is a dependency
                self._libs = []
            else:
                self._libs = ThreadpoolController().select(user_api="blas").lib_controllers
        return self._libs

    def get(self) -> int | None:
        libs = self.libs()
        return libs[0].get_num_threads() if libs else None

    def set(self, n: int, refresh: bool = False) -> None:
        for lib in self.libs(refresh):
            lib.set_num_threads(int(n))


blas = _Blas()


# ----------------------------------------------------------------------------------------------
# The policy
# ----------------------------------------------------------------------------------------------
class ThreadPolicy:
    """Decides and applies the thread count; see the module docstring.

    ``sample`` and ``apply`` are injectable so that tests can fake the load; ``clock`` is
    ``time.monotonic``.
    """

    #: the first decision needs only this long a window (later ones wait ``interval``)
    first_window = 0.25

    def __init__(self, cores: int | None = None, interval: float = 2.0, sample=read_sample,
                 apply=None, clock=time.monotonic, override: int | None = None,
                 cap: int | None = None, baseline: Sample | None = None,
                 initial: int | None = None):
        self.cores = cores or available_cores()
        self.interval = interval
        self.override = override
        self.cap = cap
        self._sample = sample
        self._apply = apply if apply is not None else (lambda n: blas.set(n, refresh=True))
        self._clock = clock
        self._lock = threading.Lock()
        self._last = baseline if baseline is not None else sample()
        self._last_check = self._last.wall
        self.threads = override or (min(self.cores, cap) if cap else self.cores)
        if initial is not None and override is None:
            self.threads = initial  # already applied (the guess at engine import)
        self.others: float | None = None
        self._applied = initial is not None and override is None
        self._decided = False

    @classmethod
    def from_env(cls, **kwargs) -> ThreadPolicy:
        return cls(override=_env_int(ENV), cap=user_cap(), **kwargs)

    def update(self, force: bool = False) -> int:
        """Re-check the load if ``interval`` seconds passed (or ``force``); returns the threads."""
        if self.override is not None:
            if not self._applied:
                self._applied = True
                self._apply(self.override)
            return self.threads
        now = self._clock()
        wait = self.interval if self._decided else self.first_window
        if not force and now - self._last_check < wait:
            return self.threads
        with self._lock:
            self._last_check = now
            sample = self._sample()
            others = others_busy(self._last, sample)
            if others is None:
                return self.threads
            self._last = sample
            self.others = others
            self._decided = True
            n = decide(others, self.cores, self.cap)
            if n != self.threads or not self._applied:
                self._applied = True
                self.threads = n
                self._apply(n)
        return self.threads

    def threads_for(self, flops: float) -> int:
        """Threads worth using on one operation of ``flops`` floating-point operations."""
        return max(1, min(self.threads, int(flops // MIN_FLOPS_PER_THREAD)))


def runnable_now(stat_text: str | None = None) -> int | None:
    """Threads runnable on the machine at this instant (``procs_running`` in /proc/stat, the
    caller included); None without /proc/stat."""
    stat_text = _proc_stat(stat_text)
    if stat_text is None:
        return None
    for line in stat_text.splitlines():
        if line.startswith("procs_running"):
            return int(line.split()[1])
    return None


def first_guess(cores: int, cap: int | None, load1: float, runnable: int | None) -> int:
    """The threads to start with, before any interval could be measured: the 1-minute load
    average (work that has been running for a while) or the threads runnable right now besides
    ours (a job started at the same moment), whichever says more. A wrong guess lasts until the
    first check, a quarter of a second of measurement later."""
    others = max(load1, (runnable - 1) if runnable else 0)
    return decide(others, cores, cap)


def _start() -> int | None:
    """At engine import, under the policy: apply the first guess if it is below BLAS's default
    (one thread per core), so that the first training steps of a second job do not collapse
    before the first check. Returns the threads applied, or None."""
    try:
        if _env_int(ENV) is not None:
            return None
    except ValueError:
        return None  # reported at the first update()
    cap = user_cap()
    cores = available_cores()
    default = min(cores, cap) if cap else cores
    guess = first_guess(cores, cap, _import_sample.load1, runnable_now())
    if guess >= default:
        return None
    blas.set(guess)
    return guess


_policy: ThreadPolicy | None = None
_import_sample = read_sample()  # the first decision measures from here (engine import)
_initial = _start()


def policy() -> ThreadPolicy:
    """The process's policy (created on first use, from the environment)."""
    global _policy
    if _policy is None:
        _policy = ThreadPolicy.from_env(baseline=_import_sample, initial=_initial)
    return _policy


def update(force: bool = False) -> int:
    """Between training steps: re-check the load at most every few seconds; returns the threads
    the engine uses now."""
    return policy().update(force)


def current() -> int:
    """The threads the engine uses now (no re-check)."""
    return policy().threads


def threads_for(flops: float) -> int:
    return policy().threads_for(flops)


def reset(**kwargs) -> ThreadPolicy:
    """A fresh policy from the environment (after changing NNSCRATCH_THREADS; tests)."""
    global _policy
    _policy = ThreadPolicy.from_env(**kwargs)
    return _policy


@contextlib.contextmanager
def limit(n: int):
    """BLAS on at most ``n`` threads inside the block (restored after)."""
    before = blas.get()
    if before is None or before <= n:
        yield
        return
    blas.set(n)
    try:
        yield
    finally:
        blas.set(before)


# ----------------------------------------------------------------------------------------------
# A small pool for work split by the caller (the convolutions' chunks of examples)
# ----------------------------------------------------------------------------------------------
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _executor(workers: int) -> ThreadPoolExecutor:
    """The pool, with room for ``workers - 1`` threads beside the caller."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers - 1:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool_size = max(1, workers - 1)
            _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="nnscratch")
        return _pool


def parallel_for(body, n_items: int, workers: int) -> None:
    """``body(worker, lo, hi)`` on ``workers`` contiguous slices [lo, hi) of range(n_items): the
    calling thread takes the first, pool threads the others; returns when all are done (and
    re-raises the first error). Each worker's BLAS calls run on one thread: the work is split
    here, not inside each GEMM (whose hand-off between threads costs more than a small GEMM).
    With fewer items than workers, the caller runs them all and BLAS may use ``workers``
    threads. ``body`` should spend its time in code that releases the GIL (numba ``nogil``
    kernels, NumPy's BLAS calls)."""
    workers = max(1, workers)
    if workers == 1 or n_items < workers:
        with limit(workers):
            body(0, 0, n_items)
        return
    bounds = [n_items * w // workers for w in range(workers + 1)]
    with limit(1):
        futures = [_executor(workers).submit(body, w, bounds[w], bounds[w + 1])
                   for w in range(1, workers)]
        try:
            body(0, bounds[0], bounds[1])
        finally:
            for f in futures:
                f.result()


__all__ = [
    "ENV", "MIN_FLOPS_PER_THREAD", "Sample", "ThreadPolicy", "available_cores", "busy_seconds",
    "current", "decide", "first_guess", "limit", "others_busy", "parallel_for", "policy",
    "read_sample", "reset", "runnable_now", "threads_for", "update", "user_cap",
]
