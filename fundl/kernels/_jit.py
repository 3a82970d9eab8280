"""The one Numba decorator every CPU kernel uses, whether Numba could be imported at all, and
when the kernels compile (:func:`ready`).

Compiling every kernel a LeNet-5 needs took ~23 s of CPU (45-57 s on a loaded 2-core
machine) before its first training step, on a fresh install whose Numba cache is empty. By
default (``FUNDL_COMPILE=background``) a kernel group whose kernels are not known to be in
Numba's disk cache does not block: a background process (:mod:`fundl._warmup`)
compiles the group's kernels into that cache while this process runs the plain-NumPy
references, which compute the same results to float rounding; each group switches to its
compiled kernels as soon as the worker reports it done (loading them from the cache takes
milliseconds). The first run is therefore not bit-identical to later ones. The cache is
shared by every install of the same fundl version (:func:`kernel_cache_dir`), so a new
virtualenv or a reinstall does not compile again.
``FUNDL_COMPILE=foreground`` (or :func:`set_compile_policy`) compiles in this process on
first use instead, as Numba does by itself: the test suite runs that way, so that it tests
the compiled kernels. Either way one line on stderr says what is happening.
"""
from __future__ import annotations

import os
import sys
import threading

import numpy

FLOAT_DTYPES = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))
"""The dtypes the kernels are compiled for (others take the plain-xp references)."""

try:
    import numba
    IMPORT_ERROR = None
except Exception as e:  # noqa: BLE001 - ImportError, or a broken install (llvmlite mismatch)
    numba = None
    IMPORT_ERROR = e


def njit(fn=None, **options):
    """``numba.njit(**options)`` with its disk cache in fundl's kernel cache (see
    :func:`kernel_cache_dir`), so that a new install or virtualenv of the same fundl finds the
    kernels an earlier one compiled; ``fn`` unchanged without Numba. Every fundl kernel is
    compiled through here (usable as ``@njit`` or ``njit(fn, fastmath=...)``).
    """
    if fn is None:
        return lambda f: njit(f, **options)
    if numba is None:
        return fn
    dispatcher = numba.njit(cache=False, **options)(fn)
    try:
        dispatcher._cache = _SharedFunctionCache(fn)
    except Exception:  # noqa: BLE001 - another Numba's internals: its own cache then
        dispatcher.enable_caching()
    return dispatcher


def jit(fn):
    """Compile ``fn`` with Numba (one thread, cached on disk), or return it unchanged without
    Numba.

    A kernel compiled here runs on the thread that calls it. Parallelism is a level up: the
    :func:`parallel_jit` drivers (convolutions, pooling, batch norm's passes, the LSTM/GRU
    time loops, ReLU and activation gradients) call such kernels once per batch part inside
    one Numba parallel region (see :mod:`fundl.kernels._parallel`). A kernel that was itself
    ``parallel=True`` would nest one region inside another and fight BLAS's threads
    (measured slower on 2 cores).
    ``error_model="numpy"`` drops the division-by-zero branch that blocks vectorisation;
    ``nogil`` lets other Python threads run while a kernel works.
    """
    return njit(fn, error_model="numpy", nogil=True)


def parallel_jit(fn):
    """Compile ``fn``, a loop over a batch's parts with :data:`prange`, as one Numba parallel
    region (cached, no GIL); ``fn`` unchanged without Numba.

    Only for drivers that call serial kernels (and single-threaded BLAS) once per part, run
    through :func:`fundl.kernels._parallel.map_compiled`, which also runs their Python source
    where a region cannot be used.
    """
    return njit(fn, nogil=True, parallel=True)


prange = numba.prange if numba is not None else range
"""The parallel loop of :func:`parallel_jit` drivers (``range`` when run as Python)."""


def cached_kernel_modules() -> set:
    """The kernel modules (``"conv"``, ``"pool"``, ...) with compiled kernels in Numba's disk cache.

    Compiling every kernel a network needs takes ~20 s the first time; the command line uses
    this to say so instead of showing a silent first step. Looks in :func:`kernel_cache_dir`,
    the package's ``__pycache__`` and ``NUMBA_CACHE_DIR`` when set.

    Example:
        >>> "conv" in cached_kernel_modules()   # doctest: +SKIP
        True
    """
    import pathlib

    roots = [pathlib.Path(__file__).resolve().parent / "__pycache__"]
    if numba is not None and getattr(numba.config, "CACHE_DIR", ""):
        roots.append(pathlib.Path(numba.config.CACHE_DIR))
    shared = kernel_cache_dir()
    if shared is not None:
        roots.append(shared)
    found = set()
    for root in roots:
        if root.is_dir():
            found.update(p.name.split(".", 1)[0] for p in root.rglob("*.nbi"))
    return found


# -- where compiled kernels are cached: one place per fundl version, shared by its installs ---
CACHE_ENV = "FUNDL_CACHE_DIR"


def kernel_cache_dir():
    """The folder fundl's compiled kernels are cached in, or None where Numba's own rules
    apply (``NUMBA_CACHE_DIR`` or ``NUMBA_CACHE_LOCATOR_CLASSES`` set by the user, or no Numba).

    ``FUNDL_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/fundl`` (``~/.cache/fundl``), with one
    subfolder per fundl version. Why not Numba's default (``__pycache__`` beside the
    sources): a reinstall or a new virtualenv starts with an empty ``__pycache__``, and
    compiling every kernel again costs ~25 s of CPU. Numba checks each entry against a hash
    of its source file's content (not its path or modification time), so a cache shared by
    installs can never serve a kernel compiled from other code. A folder that cannot be
    written falls back to Numba's default.

    Example:
        >>> kernel_cache_dir()                    # doctest: +SKIP
        PosixPath('/home/me/.cache/fundl/kernels-0.1.0')
    """
    import pathlib

    if numba is None or getattr(numba.config, "CACHE_DIR", "") or \
            getattr(numba.config, "CACHE_LOCATOR_CLASSES", ""):
        return None
    root = os.environ.get(CACHE_ENV, "").strip()
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        root = os.path.join(xdg or os.path.join(os.path.expanduser("~"), ".cache"), "fundl")
    from .. import __version__

    return pathlib.Path(root) / f"kernels-{__version__}"


def _source_hash(path) -> bytes:
    """SHA-256 of a file's bytes (what recent Numbas stamp entries with), memoised by (path,
    size, modification time)."""
    import hashlib

    st = os.stat(path)
    key = (str(path), st.st_size, st.st_mtime_ns)
    digest = _HASHES.get(key)
    if digest is None:
        with open(path, "rb") as f:
            digest = _HASHES[key] = hashlib.sha256(f.read()).digest()
    return digest


_HASHES = {}

if numba is not None:
    from numba.core import caching as _caching

    class _SharedLocator(_caching._CacheLocator):
        """Numba cache locator for fundl's kernels: ``kernel_cache_dir()/<subpackage>``,
        entries stamped with the content hashes of their source file and of the files its
        kernels call into (:data:`_DEPENDS`)."""

        def __init__(self, py_func, py_file, folder):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = str(folder)

        def get_cache_path(self):
            return self._cache_path

        def get_source_stamp(self):
            # the kernels a module's code calls from another module are compiled into it:
            # those sources are part of the stamp, or a change to them would load stale code
            import pathlib

            path = pathlib.Path(self._py_file)
            names = _DEPENDS.get(path.stem, (path.name,))
            return b"".join(_source_hash(path.with_name(name)) for name in names)

        def get_disambiguator(self):
            return str(self._lineno)

        @classmethod
        def from_function(cls, py_func, py_file):
            import pathlib

            root = kernel_cache_dir()
            package = pathlib.Path(__file__).resolve().parents[1]  # fundl/
            try:
                relative = pathlib.Path(py_file).resolve().parent.relative_to(package)
            except ValueError:
                return None  # not a fundl source
            if root is None or not os.path.exists(py_file):
                return None
            self = cls(py_func, py_file, root.joinpath(*relative.parts))
            try:
                self.ensure_cache_path()
            except OSError:
                return None  # not writable: Numba's own locators take over
            return self

    class _SharedCacheImpl(_caching.CompileResultCacheImpl):
        _locator_classes = [_SharedLocator, *_caching.CompileResultCacheImpl._locator_classes]

    class _SharedFunctionCache(_caching.FunctionCache):
        _impl_class = _SharedCacheImpl


# -- when kernels compile: in this process (foreground) or in a background worker --------------
POLICIES = ("background", "foreground")
COMPILE_ENV = "FUNDL_COMPILE"
GROUPS = ("conv", "pool", "activation", "norm", "sparse", "recurrent", "fused", "elementwise")
"""The kernel groups :func:`ready` knows: one per kernel module (the warm-up compiles each).
``"fused"`` holds the one-pass optimizer updates and softmax cross-entropy, and the Dense
layers' GEMM task runner (:func:`fundl.kernels.fused.run_gemms`)."""

_READY = {}  # (group, dtype char) -> True once the group's kernels may be called
_LOCK = threading.RLock()
_STATE = {"policy": None, "worker": None, "said": set()}


def set_compile_policy(policy):
    """Choose when kernels compile: ``"background"`` or ``"foreground"`` (None: back to
    ``FUNDL_COMPILE``, else background); returns the policy in force before.

    ``"foreground"`` compiles each kernel in this process on its first call (the first step
    waits for it, results bit-identical from the first step on); ``"background"`` runs the
    NumPy references while a worker process compiles (see the module's documentation).
    Groups already switched to their compiled kernels stay switched.

    Example:
        >>> old = set_compile_policy("foreground")
        >>> set_compile_policy(old)
        'foreground'
    """
    if policy is not None and policy not in POLICIES:
        raise ValueError(f"fundl.kernels.set_compile_policy: policy must be one of {POLICIES} "
                         f"or None, got {policy!r}.")
    with _LOCK:
        old = compile_policy()
        _STATE["policy"] = policy
        if policy == "foreground":  # nothing waits for the worker any more
            _READY.update(dict.fromkeys(_pending(), True))
        return old


def compile_policy() -> str:
    """The compile policy in force: set by :func:`set_compile_policy`, else the
    ``FUNDL_COMPILE`` environment variable, else ``"background"``."""
    policy = _STATE["policy"]
    if policy is not None:
        return policy
    value = os.environ.get(COMPILE_ENV, "").strip().lower() or "background"
    if value not in POLICIES:
        raise ValueError(f"fundl: {COMPILE_ENV} must be one of {POLICIES}, got "
                         f"{os.environ.get(COMPILE_ENV)!r}; unset it for the default "
                         f"(background).")
    return value


def ready(group, dtype) -> bool:
    """Whether the compiled kernels of ``group`` (one of :data:`GROUPS`) may be called on
    arrays of ``dtype`` now; False while a background worker still compiles them (call the
    plain-NumPy reference meanwhile).

    True at once when Numba's cache holds the group's kernels from an earlier run (a stamp
    the worker writes beside Numba's cache files), under the foreground policy, for dtypes
    the kernels are not compiled for, and when no worker can run. The first call for a group
    that is not cached starts the worker (one process, groups compiled in the order asked).

    Example:
        >>> ready("conv", numpy.float32)     # doctest: +SKIP
        False
    """
    key = (group, dtype.char if isinstance(dtype, numpy.dtype) else numpy.dtype(dtype).char)
    if _READY.get(key):
        return True
    return _query(key)


def _pending():
    return [k for k, v in _READY.items() if not v]


def _say(text):
    """One line on stderr, once per process for each text (the user's only sign of it)."""
    if text not in _STATE["said"]:
        _STATE["said"].add(text)
        print(f"fundl: {text}", file=sys.stderr, flush=True)


def _query(key) -> bool:
    group, char = key
    if numba is None or numpy.dtype(char) not in FLOAT_DTYPES:
        _READY[key] = True
        return True
    with _LOCK:
        if _READY.get(key):
            return True
        if key not in _READY:  # the first ask for this group in this process
            if stamped(group, char) or _indexed(group, char):
                _READY[key] = True
                return True
            if compile_policy() == "foreground":
                _say("compiling CPU kernels on first use (tens of seconds in all, once per "
                     "fundl version: later runs and installs load them from the cache).")
                _READY[key] = True
                return True
            worker = _STATE["worker"]
            if worker is not None and worker.done.get("exited"):
                worker = None  # it left after idling: a new one takes this group
            if worker is None:
                try:
                    worker = _STATE["worker"] = _Worker()
                except OSError as e:
                    _say(f"cannot start the kernel compiler process ({e}); compiling in this "
                         f"process instead.")
                    _READY[key] = True
                    return True
                _say("compiling CPU kernels in a background process (once per fundl "
                     "version); the first steps run on NumPy reference kernels meanwhile, not "
                     f"bit-identical to later runs. Set {COMPILE_ENV}=foreground to wait for "
                     "them instead.")
            _READY[key] = False
            worker.ask(group, char)
        worker = _STATE["worker"]
        status = worker.status(group, char) if worker is not None else "failed"
        if status == "running":
            return False
        if status == "failed":
            _say(f"the kernel compiler process failed ({worker.error if worker else ''}); "
                 "compiling in this process instead.")
        _READY[key] = True
        return True


_DEPENDS = {"conv": ("conv.py", "blas.py", "activation.py"),
            "recurrent": ("recurrent.py", "blas.py", "conv.py", "gemm.py"),
            "pool": ("pool.py", "conv.py"), "fused": ("fused.py", "gemm.py")}
"""The sources a kernel module's compiled code comes from (its own by default): its stamp and
Numba's cache entries for it are valid for these files' contents."""


def _source_key(group) -> str:
    """What a stamp is valid for: Numba, Python, the CPU and the content of the group's
    sources (as Numba's own cache index; a reinstall of the same code keeps it valid)."""
    import pathlib
    import platform

    parts = [numba.__version__, platform.python_version(), platform.machine()]
    try:
        import llvmlite.binding as llvm

        parts.append(llvm.get_host_cpu_name())
    except Exception:  # noqa: BLE001 - an unknown CPU name only makes stamps rarer
        pass
    here = pathlib.Path(__file__).resolve().parent
    for name in _DEPENDS.get(group, (f"{group}.py",)):
        parts.append(f"{name}:{_source_hash(here / name).hex()}")
    return "\n".join(parts)


def _dispatchers(group):
    """The Numba kernels defined in the group's module."""
    import importlib

    module = importlib.import_module(f"{__package__}.{group}")
    return [v for v in vars(module).values()
            if isinstance(v, numba.core.dispatcher.Dispatcher) and
            v.py_func.__module__ == module.__name__]


def _stamp_path(group, char):
    """Where the stamp of ``group`` lives: beside the Numba cache of its kernels (None when
    Numba exposes no cache location)."""
    import pathlib

    try:
        root = _dispatchers(group)[0]._cache._cache_path  # the locator Numba chose
    except Exception:  # noqa: BLE001 - another Numba's internals: no stamps
        return None
    return pathlib.Path(root) / f"fundl-compiled-{group}-{char}.txt"


def _indexed(group, char) -> bool:
    """Whether Numba's cache holds a fresh entry for every kernel of ``group``, some of them
    for dtype ``char`` (a cache filled by earlier foreground runs; signatures it lacks still
    compile on first use)."""
    name = numpy.dtype(char).name
    try:
        indexes = [d._cache._cache_file._load_index() for d in _dispatchers(group)]
    except Exception:  # noqa: BLE001 - another Numba's internals: ask the stamp only
        return False
    return bool(indexes) and all(indexes) and \
        any(name in str(key[0]) for index in indexes for key in index)


def stamped(group, char) -> bool:
    """Whether the warm-up worker compiled ``group`` for dtype ``char`` into this cache, for
    these sources (see :func:`_source_key`)."""
    path = _stamp_path(group, char)
    try:
        return path is not None and path.read_text() == _source_key(group)
    except OSError:
        return False


def write_stamp(group, char):
    """Record that ``group`` (dtype ``char``) is compiled in the cache (the worker's last act)."""
    path = _stamp_path(group, char)
    if path is not None:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(_source_key(group))
        os.replace(tmp, path)  # atomic: a reader never sees half a stamp


WORKER_TIMEOUT = 900.0
"""Seconds after which a group the worker has not answered compiles in this process."""


class _Worker:
    """The background compiler: ``python -m fundl._warmup``, fed "group char" lines
    on its stdin, answering "done group char" or "failed group char message" on its stdout
    (read by a daemon thread). It exits when this process closes its stdin (or exits)."""

    def __init__(self):
        import subprocess

        import pathlib

        # the worker must compile this very fundl (its sources key the cache), wherever it
        # was imported from: its folder first on the worker's path
        root = str(pathlib.Path(__file__).resolve().parents[2])
        path = os.pathsep.join([root] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        env = dict(os.environ, **{COMPILE_ENV: "foreground", "PYTHONPATH": path})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fundl._warmup"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True, bufsize=1)
        self.done = {}
        self.done_at = {}
        self.asked = {}
        self.error = ""
        self.pid = os.getpid()
        threading.Thread(target=self._read, name="fundl-compile", daemon=True).start()

    def ask(self, group, char):
        import time

        self.asked[(group, char)] = time.monotonic()
        try:
            self.proc.stdin.write(f"{group} {char}\n")
            self.proc.stdin.flush()
        except (OSError, ValueError) as e:
            self.done[(group, char)] = "failed"
            self.error = str(e)

    def _read(self):
        import time

        for line in self.proc.stdout:
            word, group, char, *rest = line.split(maxsplit=3) + ["", "", ""]
            if word in ("done", "failed"):
                if word == "failed":
                    self.error = " ".join(rest).strip()
                self.done_at[(group, char)] = time.time()  # (for benchmarks)
                self.done[(group, char)] = word
        self.error = self.error or f"exit code {self.proc.wait()}"
        self.done["exited"] = True

    def status(self, group, char) -> str:
        """``"running"``, ``"done"`` or ``"failed"`` for the group asked of this worker."""
        got = self.done.get((group, char))
        if got is not None:
            return got
        import time

        if time.monotonic() - self.asked.get((group, char), 0.0) > WORKER_TIMEOUT:
            self.error = f"no answer after {WORKER_TIMEOUT:.0f} s"
            return "failed"  # (a sys.executable that is not Python: never wait forever)
        return "failed" if self.done.get("exited") or os.getpid() != self.pid else "running"


def _after_fork():
    # a forked child shares no worker: what it still waited for compiles in the foreground
    _STATE["worker"] = None
    for k in _pending():
        _READY[k] = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
