"""swa: sliding-window attention over libswa (docs/PYTHON.md).

    import swa
    out = swa.attention(q, k, v, window=(4095, 0))            # Mistral's sliding_window=4096
    out = swa.attention(q, k, v, window=swa.windows.from_hf(4096))
"""

import sys

from . import windows
from ._lib import SwaError, SwaInvalidArgument, SwaOutOfMemory, SwaUnsupported, version
from .attention import attention, attention_backward

# The torch operators (torch.ops.swa.attention_fwd, _bwd) register when swa.torch_op is
# imported: now when torch already is, else at the first call with torch tensors.
if "torch" in sys.modules:
    from . import torch_op  # noqa: F401



def __getattr__(name):
    """swa.transformers (the Hugging Face backend, module swa.hf: a module literally named
    transformers inside the package would read like the real one) and swa.nn load on first
    use, so that `import swa` needs neither transformers nor torch."""
    import importlib
    if name in ("transformers", "hf"):
        return importlib.import_module(".hf", __name__)
    if name == "nn":
        return importlib.import_module(".nn", __name__)
    raise AttributeError(f"module 'swa' has no attribute {name!r}")


__version__ = "0.1.0"
__all__ = ["attention", "attention_backward", "windows", "version", "SwaError", "SwaInvalidArgument",
           "SwaUnsupported", "SwaOutOfMemory"]
