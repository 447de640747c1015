"""Windows from other libraries' conventions, as swa's (left, right) (docs/WINDOWS.md).

swa's window (left, right) keeps key j for the query at position p iff
p - left <= j <= p + right (-1: unbounded), FlashAttention's convention. "A sliding
window of W" in most model configs counts the query itself: that is (W - 1, 0).
"""


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def from_flash_attn(window_size):
    """FlashAttention's window_size=(left, right), -1 unbounded: the same pair.
    flash_attn_func(..., window_size=(4096, 0)) sees 4097 keys, as does swa's (4096, 0)."""
    left, right = window_size
    return _check_int(left, "window_size[0]", -1), _check_int(right, "window_size[1]", -1)


def from_hf(sliding_window):
    """Hugging Face configs' sliding_window=W (Mistral, Gemma 2/3, Qwen 2, gpt-oss): the
    query and the W - 1 keys before it, i.e. (W - 1, 0), with causal attention. None (no
    sliding window) is causal attention, (-1, 0)."""
    if sliding_window is None:
        return (-1, 0)
    return (_check_int(sliding_window, "sliding_window", 1) - 1, 0)


def from_xformers(window_size=None, *, window_left=None, window_right=None):
    """xformers' attention biases. window_size=W of the causal local masks
    (LowerTriangularFromBottomRightLocalAttentionMask, BlockDiagonalCausalLocalAttentionMask):
    W keys including the query, (W - 1, 0). window_left/window_right of
    LocalAttentionFromBottomRightMask: the same pair."""
    if window_size is not None:
        if window_left is not None or window_right is not None:
            raise ValueError("give either window_size or window_left/window_right, not both")
        return (_check_int(window_size, "window_size", 1) - 1, 0)
    if window_left is None or window_right is None:
        raise ValueError("from_xformers needs window_size, or both window_left and window_right")
    return _check_int(window_left, "window_left", 0), _check_int(window_right, "window_right", 0)


def from_llama_cpp(n_swa, swa_type="standard"):
    """llama.cpp's n_swa. "standard" masks key j for position p when p - j >= n_swa, so
    (n_swa - 1, 0), causal; "symmetric" masks |p - j| > n_swa / 2, so (n_swa // 2,
    n_swa // 2). (llama.cpp's "chunked" type is swa's chunk=n_swa with causal=True.)"""
    n_swa = _check_int(n_swa, "n_swa", 1)
    if swa_type == "standard":
        return (n_swa - 1, 0)
    if swa_type == "symmetric":
        return (n_swa // 2, n_swa // 2)
    if swa_type == "chunked":
        raise ValueError("llama.cpp's chunked SWA is not a window: use chunk=n_swa, causal=True")
    raise ValueError(f"swa_type must be 'standard' or 'symmetric', got {swa_type!r}")


def from_flex_mask(mask_mod, seq_len):
    """A FlexAttention mask_mod(b, h, q_idx, kv_idx) that keeps a band of keys around each
    query, measured on a seq_len x seq_len grid (FlexAttention aligns q_idx and kv_idx at
    the top left; with Lq == Lk that is swa's alignment). Returns (left, right), where -1
    means the band reaches the edge of the grid. Raises ValueError when the mask is not a
    band (e.g. it depends on the batch or head, or has holes).

    The usual sliding mask_mod `(q_idx >= kv_idx) & (q_idx - kv_idx <= W)` gives (W, 0)."""
    import torch

    n = _check_int(seq_len, "seq_len", 1)
    q_idx = torch.arange(n).view(n, 1)
    kv_idx = torch.arange(n).view(1, n)
    zero = torch.tensor(0)
    mask = torch.as_tensor(mask_mod(zero, zero, q_idx, kv_idx)).expand(n, n).to(torch.bool)
    offset = kv_idx - q_idx  # j - p
    if not bool(mask.diagonal().all()):
        raise ValueError("the mask hides some query's own position: not a sliding window")
    left = int((-offset)[mask].max())
    right = int(offset[mask].max())
    band = (offset >= -left) & (offset <= right)
    if not torch.equal(mask, band):
        raise ValueError("the mask is not a band |j - p| within (left, right) of every query")
    other = torch.as_tensor(mask_mod(torch.tensor(1), torch.tensor(1), q_idx, kv_idx)).expand(n, n)
    if not torch.equal(other.to(torch.bool), mask):
        raise ValueError("the mask depends on the batch or head index: not one window")
    return (-1 if left >= n - 1 else left, -1 if right >= n - 1 else right)
