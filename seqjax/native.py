"""The LSTM time loop as a compiled CPU kernel, called from XLA through ``jax.ffi`` (opt-in).

Turned on (``SEQJAX_NATIVE=1``, or :func:`enabled_as`), :func:`seqjax.recurrent.unroll` runs a
float32 LSTM layer's recurrence on the CPU here when the kernel is available: one XLA custom call
runs the whole forward sequence (per step one OpenBLAS sgemm ``[x_t, h] @ [W_ih, W_hh]^T`` and one
pass over the gates) and one runs the backward sweep; the weight and input gradients stay in XLA as
a few big matmuls over all steps. It
computes what the XLA loop in :mod:`seqjax._fast` computes, so the pure-function API is unchanged;
only the per-step dispatch of a dozen small XLA operations is gone.

The kernel is C++ (``seqjax/_native/lstm.cc``), compiled on the machine that runs it on first use
(``./launch.sh setup`` installs its BLAS on CPU machines). It needs a C++ compiler (``$CXX``, else ``c++``/``g++``)
and the ``scipy-openblas32`` wheel (the ``native`` extra). Where either is missing, or the build
fails, seqjax falls back to the XLA loop and :func:`status` says why. It is off by default: on the
CPU where it was measured (AMD EPYC, 2 cores) the chargen protocol step ran at the XLA loop's
speed within the noise (benchmarks/README.md); ``benchmarks/chargen_step.py --variants native`` measures it
on yours. The compiled library is cached under ``$SEQJAX_NATIVE_DIR`` (default
``~/.cache/seqjax/native``), keyed by the source, the compiler flags and the JAX version.

    python -m seqjax.native        # build if needed, and print whether the kernel is in use
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

SOURCE = Path(__file__).resolve().parent / "_native" / "lstm.cc"
_TARGETS = {"seqjax_lstm_fwd": "SeqjaxLstmForward", "seqjax_lstm_bwd": "SeqjaxLstmBackward"}
_lock = threading.Lock()
_state: dict = {}  # "ok": bool, "why": str, "path": str
_enabled = [os.environ.get("SEQJAX_NATIVE", "0") == "1"]


def enabled() -> bool:
    """Whether calls traced now may use the kernel (``SEQJAX_NATIVE=1``, or inside :func:`enabled_as`)."""
    return _enabled[0]


@contextmanager
def enabled_as(on: bool):
    """Turn the kernel on (or off) for the functions traced inside the block. A function compiled
    inside keeps what it was compiled with, and so do eager ``unroll`` calls, which reuse one
    compilation per shape: set ``SEQJAX_NATIVE=1`` before the first call to have it everywhere."""
    before, _enabled[0] = _enabled[0], bool(on)
    try:
        yield
    finally:
        _enabled[0] = before


def _cache_dir() -> Path:
    return Path(os.environ.get("SEQJAX_NATIVE_DIR") or Path.home() / ".cache" / "seqjax" / "native")


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _openblas():
    try:
        import scipy_openblas32 as ob
    except ImportError:
        return None
    return ob


def _flags(arch: bool) -> list[str]:
    return ["-O3", "-std=c++17", "-shared", "-fPIC", "-fno-math-errno", "-fno-trapping-math",
            "-fopenmp-simd"] + (["-march=native"] if arch else [])


def _cpu_kind() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags"))}))


def _build(cxx: str, ob) -> tuple[Path | None, str]:
    """Compile the kernel into the cache (atomically: concurrent processes each write their own
    temporary file and rename it). Returns ``(path, "")`` or ``(None, why)``."""
    src = SOURCE.read_text()
    libdir = ob.get_lib_dir()
    # -march=native: a cache shared between machines (an NFS home) keeps one build per CPU kind
    parts = [src, cxx, " ".join(_flags(True)), jax.__version__, libdir, platform.machine(), _cpu_kind()]
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    out_dir = _cache_dir()
    target = out_dir / f"seqjax_lstm_{key}.so"
    if target.exists():
        return target, ""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return None, f"cannot create the build directory {out_dir}: {e.strerror}"
    why = ""
    for arch in (True, False):  # -march=native where the compiler knows this CPU, else a generic build
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
        os.close(fd)
        cmd = [cxx, *_flags(arch), "-I", jax.ffi.include_dir(), "-I", ob.get_include_dir(), str(SOURCE),
               "-o", tmp, "-L", libdir, f"-l{ob.get_library()}", f"-Wl,-rpath,{libdir}"]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            run, why = None, f"the compiler did not run: {e}"
        if run is not None and run.returncode == 0:
            os.replace(tmp, target)
            return target, ""
        Path(tmp).unlink(missing_ok=True)
        if run is not None:
            last = (run.stderr.strip().splitlines() or ["(no output)"])[-1]
            why = f"the build failed ({Path(cxx).name} exit {run.returncode}): {last}"
    return None, why


def _load() -> dict:
    if sys.platform != "linux":
        return {"ok": False, "why": f"built for Linux only, this is {sys.platform}"}
    ob = _openblas()
    if ob is None:
        return {"ok": False, "why": "scipy-openblas32 is not installed (pip install 'seqjax[native]')"}
    cxx = _compiler()
    if cxx is None:
        return {"ok": False, "why": "no C++ compiler found (set CXX, or install g++)"}
    path, why = _build(cxx, ob)
    if path is None:
        return {"ok": False, "why": why}
    try:
        lib = ctypes.CDLL(str(path))
        for name, symbol in _TARGETS.items():
            jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
    except (OSError, AttributeError) as e:
        return {"ok": False, "why": f"the built library {path} does not load: {e}"}
    return {"ok": True, "why": "", "path": str(path)}


def status() -> dict:
    """``{"ok": bool, "why": str, "path": str}``: whether the kernel is in use, and if not, why.
    The first call builds and loads it (a few seconds when it is not cached yet)."""
    with _lock:
        if not _state:
            _state.update(_load())
        return dict(_state)


def available() -> bool:
    return status()["ok"]


def applies(cell, xs, params, carry0) -> bool:
    """Whether a fused LSTM call runs on the kernel: turned on, float32 throughout, full-precision
    matmuls, the CPU backend, the kernel built."""
    if not enabled() or cell.kind != "lstm" or cell.matmul_dtype is not None or jax.default_backend() != "cpu":
        return False
    leaves = [xs, carry0.h, carry0.c, *(params[k] for k in params)]
    if any(jnp.result_type(a) != jnp.float32 for a in leaves):
        return False
    return available()


def _sds(shape):
    return jax.ShapeDtypeStruct(tuple(shape), jnp.float32)


def lstm_forward(xs, w_ih, w_hh, bias, h0, c0, lengths, *, reverse: bool, batch_major: bool):
    """The LSTM over every step of ``xs`` (``(T, B, I)``, or ``(B, T, I)`` with ``batch_major``):
    per step one sgemm ``[x_t, h] @ [W_ih, W_hh]^T`` onto ``bias`` (``b_ih + b_hh``), then the gates.
    Returns ``(ys, h, c, acts, cs)``: the outputs, the final carry, and what :func:`lstm_backward`
    needs (the activated gates and the cell state after every step)."""
    H = w_hh.shape[1]
    lead = xs.shape[:2]
    call = jax.ffi.ffi_call("seqjax_lstm_fwd", (_sds(lead + (H,)), _sds(h0.shape), _sds(c0.shape),
                                                _sds(lead + (4 * H,)), _sds(lead + (H,))),
                            vmap_method="sequential")
    w_cat = jnp.concatenate([w_ih, w_hh], axis=1)
    return call(xs, w_cat, bias, h0, c0, lengths, reverse=np.int32(reverse), batch_major=np.int32(batch_major))


def lstm_backward(w_hh, acts, cs, c0, dys, dh, dc, lengths, *, reverse: bool, batch_major: bool):
    """The reverse sweep: every step's pre-activation gradient (zero on padded steps) and the
    gradient of the initial carry, ``(d_pre, dh0, dc0)``."""
    call = jax.ffi.ffi_call("seqjax_lstm_bwd", (_sds(acts.shape), _sds(dh.shape), _sds(dc.shape)),
                            vmap_method="sequential")
    return call(w_hh, acts, cs, c0, dys, dh, dc, lengths, reverse=np.int32(reverse),
                batch_major=np.int32(batch_major))


if __name__ == "__main__":
    s = status()  # builds it, whether turned on or not
    on = "on" if enabled() else "off (SEQJAX_NATIVE=1 turns it on)"
    print(f"seqjax native LSTM kernel: built ({s['path']}), {on}" if s["ok"] else
          f"seqjax native LSTM kernel: not available, {s['why']}; the XLA loop runs instead")
