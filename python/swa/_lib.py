"""libswa.so through ctypes: the structs of include/swa/swa.h and the error mapping.

The library is the libswa.so installed inside this package (pip install .), or the one
named by the environment variable SWA_LIB (a build tree's, for development).
"""

import ctypes as C
import os
import pathlib

SWA_F32, SWA_BF16, SWA_F16 = 0, 1, 2
SWA_CPU, SWA_CUDA = 0, 1

SWA_ERR_INVALID_ARGUMENT = -1
SWA_ERR_UNSUPPORTED = -2
SWA_ERR_OUT_OF_MEMORY = -3


class SwaError(RuntimeError):
    """A failing libswa call; the message is swa_last_error()'s, `code` its return code."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


class SwaInvalidArgument(SwaError, ValueError):
    """SWA_ERR_INVALID_ARGUMENT: a bad shape, stride, dtype, window or cu_seqlens."""


class SwaUnsupported(SwaError, NotImplementedError):
    """SWA_ERR_UNSUPPORTED: valid, but not built in (a CUDA tensor without CUDA)."""


class SwaOutOfMemory(SwaError, MemoryError):
    """SWA_ERR_OUT_OF_MEMORY: scratch allocation failed."""


class Tensor(C.Structure):
    """swa_tensor: a strided [batch, seqlen, heads, head_dim] view, strides in elements."""

    _fields_ = [
        ("data", C.c_void_p),
        ("dtype", C.c_int),
        ("device", C.c_int),
        ("shape", C.c_int64 * 4),
        ("stride", C.c_int64 * 4),
    ]


class AttentionParams(C.Structure):
    """swa_attention_params, field for field."""

    _fields_ = [
        ("window_left", C.c_int64),
        ("window_right", C.c_int64),
        ("head_window_left", C.c_void_p),  # const int64_t* [Hq]
        ("head_window_right", C.c_void_p),  # const int64_t* [Hq]
        ("causal", C.c_int),
        ("scale", C.c_float),
        ("softcap", C.c_float),
        ("alibi_slopes", C.c_void_p),  # const float* [Hq]
        ("sink_tokens", C.c_int64),
        ("sink_logits", C.c_void_p),  # const float* [Hq]
        ("chunk_size", C.c_int64),
        ("chunk_overlap", C.c_int64),
        ("global_tokens", C.c_void_p),  # const int64_t* [num_global_tokens]
        ("num_global_tokens", C.c_int64),
        ("cu_seqlens_q", C.c_void_p),  # const int32_t* [num_seqs + 1]
        ("cu_seqlens_k", C.c_void_p),
        ("num_seqs", C.c_int64),
        ("num_threads", C.c_int),
    ]


def _library_path():
    override = os.environ.get("SWA_LIB")
    if override:
        return override
    return str(pathlib.Path(__file__).resolve().parent / "libswa.so")


def _load():
    path = _library_path()
    try:
        lib = C.CDLL(path)
    except OSError as e:
        raise ImportError(f"swa: cannot load libswa.so from {path}: {e} "
                          "(install the package with `pip install .`, or set SWA_LIB)") from e
    ptr = C.c_void_p
    lib.swa_attention_params_init.argtypes = [C.POINTER(AttentionParams)]
    lib.swa_attention_params_init.restype = None
    lib.swa_attention_forward.argtypes = [C.POINTER(AttentionParams), C.POINTER(Tensor),
                                          C.POINTER(Tensor), C.POINTER(Tensor), C.POINTER(Tensor), ptr]
    lib.swa_attention_forward.restype = C.c_int
    lib.swa_attention_backward.argtypes = [C.POINTER(AttentionParams)] + [C.POINTER(Tensor)] * 4 + [
        ptr, C.POINTER(Tensor), C.POINTER(Tensor), C.POINTER(Tensor), C.POINTER(Tensor), ptr]
    lib.swa_attention_backward.restype = C.c_int
    lib.swa_last_error.argtypes = []
    lib.swa_last_error.restype = C.c_char_p
    lib.swa_version.argtypes = []
    lib.swa_version.restype = C.c_char_p
    return lib


LIB = _load()

_ERRORS = {
    SWA_ERR_INVALID_ARGUMENT: SwaInvalidArgument,
    SWA_ERR_UNSUPPORTED: SwaUnsupported,
    SWA_ERR_OUT_OF_MEMORY: SwaOutOfMemory,
}


def check(code):
    """Raises the exception for a nonzero libswa return code, with the library's message."""
    if code == 0:
        return
    message = LIB.swa_last_error().decode("utf-8", "replace")
    raise _ERRORS.get(code, SwaError)(message, code)


def version():
    return LIB.swa_version().decode()


def make_tensor(data_ptr, dtype, device, shape, strides):
    """A swa_tensor over existing memory; shape and strides (in elements) have 4 entries."""
    t = Tensor()
    t.data = data_ptr or None
    t.dtype = dtype
    t.device = device
    for i in range(4):
        t.shape[i] = int(shape[i])
        t.stride[i] = int(strides[i])
    return t


def default_params():
    p = AttentionParams()
    LIB.swa_attention_params_init(C.byref(p))
    return p


def forward(params, q, k, v, out, lse_ptr):
    check(LIB.swa_attention_forward(C.byref(params), C.byref(q), C.byref(k), C.byref(v),
                                    C.byref(out), lse_ptr or None))


def backward(params, q, k, v, out, lse_ptr, dout, dq, dk, dv, dsink_ptr):
    check(LIB.swa_attention_backward(C.byref(params), C.byref(q), C.byref(k), C.byref(v),
                                     C.byref(out), lse_ptr or None, C.byref(dout), C.byref(dq),
                                     C.byref(dk), C.byref(dv), dsink_ptr or None))
