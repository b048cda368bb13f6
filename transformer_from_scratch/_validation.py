"""Input checks of the model core, in one place: configs, tensors given to models, attention arguments.

Every check raises a ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, wrong value) whose message
names the argument, what was expected and what was received — e.g. ``d_model=30 is not divisible by n_heads=4``
or ``input_ids: token id 5003 is outside the vocabulary of size 5000``. The checks run once, at the boundary:
when a config is built, and when a model or a public function receives its inputs.

Token ids are range-checked without a host synchronisation on accelerators (see :func:`check_token_ids`).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable

import torch
from torch import Tensor

__all__: list[str] = []  # private: imported by the package's modules, not by users


# ---- plain values (configs, constructor arguments) ----------------------------------------------------------


def check_int(name: str, value, minimum: int) -> None:
    """``value`` is an int (not a bool) and ≥ ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be ≥ {minimum}, got {value}")


def check_size(name: str, value) -> int:
    """``value`` is a size (a length) ≥ 0 -> it as an int.

    Accepts what ``range`` accepts: a Python int, a NumPy integer, a 0-d integer tensor (and, under
    ``torch.compile``, a symbolic int). Refuses bools, floats (``2.5`` is not a length, even if ``torch.arange``
    would round it up) and negative sizes.
    """
    if isinstance(value, bool) or (isinstance(value, Tensor) and value.dtype == torch.bool):
        raise TypeError(f"{name} must be an int (a length), got bool {value!r}")
    if isinstance(value, int | torch.SymInt):
        size = value
    else:
        try:
            size = operator.index(value)  # NumPy ints, 0-d integer tensors; floats raise TypeError
        except TypeError:
            raise TypeError(f"{name} must be an int (a length), got {_type_name(value)} {value!r}") from None
    if size < 0:
        raise ValueError(f"{name} must be ≥ 0 (a length), got {size}")
    return size


def check_probability(name: str, value) -> None:
    """``value`` is a number in [0, 1) — a dropout rate."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a float in [0, 1), got {type(value).__name__} {value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")


def check_positive_float(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a positive float, got {type(value).__name__} {value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def check_choice(name: str, value, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_heads(d_model: int, n_heads: int) -> None:
    """D must split into H heads of equal width."""
    if d_model % n_heads != 0:
        raise ValueError(
            f"d_model={d_model} is not divisible by n_heads={n_heads}; "
            f"choose d_model as a multiple of n_heads (e.g. {n_heads * max(1, d_model // n_heads)})"
        )


def check_pad_id(pad_id, vocab_size: int, name: str = "pad_id") -> None:
    """``pad_id`` (or another special id, ``name``) is None or an id of the vocabulary."""
    if pad_id is None:
        return
    check_int(name, pad_id, 0)
    if pad_id >= vocab_size:
        raise ValueError(f"{name}={pad_id} is outside the vocabulary: it must be < {vocab_size}")


# ---- tensors given to models ----------------------------------------------------------------------------------


def _type_name(value) -> str:
    return str(value.dtype) if isinstance(value, Tensor) else type(value).__name__


def check_integer_tensor(ids, name: str, *, what: str = "(B, T)") -> None:
    """``ids`` is an integer tensor (not bool, float or complex)."""
    if not isinstance(ids, Tensor):
        raise TypeError(f"{name} must be an integer tensor of token ids of shape {what}, got {type(ids).__name__}")
    if ids.dtype == torch.bool or ids.is_floating_point() or ids.is_complex():
        raise TypeError(f"{name} must be an integer tensor of token ids, got {ids.dtype}")


def is_compiling() -> bool:
    """Whether ``torch.compile`` is tracing this call (then a host read of a tensor would break the graph)."""
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and hasattr(compiler, "is_compiling"):
        return compiler.is_compiling()
    return False  # torch < 2.3: no torch.compile check needed here


def check_token_ids(ids: Tensor, vocab_size: int, name: str = "input_ids", what: str = "vocabulary") -> None:
    """Every id of ``ids`` lies in [0, vocab_size) — checked without a host synchronisation on accelerators.

    On the CPU (eager) the smallest and largest ids are read and a bad one is named in a ``ValueError``. On an
    accelerator, or inside ``torch.compile``, reading them would stop the host until the device catches up (and
    break the compiled graph), so the check is queued on the device instead (``torch._assert_async``): a bad id
    then fails the next synchronising call with this message as a ``RuntimeError``.
    """
    if ids.numel() == 0:
        return
    if ids.device.type == "cpu" and not is_compiling():
        low, high = (int(v) for v in torch.aminmax(ids))
        if low < 0 or high >= vocab_size:
            bad = high if high >= vocab_size else low
            raise ValueError(f"{name}: token id {bad} is outside the {what} of size {vocab_size}")
        return
    torch._assert_async(
        ((ids >= 0) & (ids < vocab_size)).all(), f"{name}: a token id is outside the {what} of size {vocab_size}"
    )


def check_all(condition: Tensor, message: Callable[[], str], device_message: str) -> None:
    """Raise ``ValueError(message())`` unless every entry of the bool tensor ``condition`` is True.

    As :func:`check_token_ids`: read on the CPU; on an accelerator or under ``torch.compile`` queued on the device
    (``torch._assert_async``) with ``device_message``, which says what is wrong without reading the data.
    """
    if condition.device.type == "cpu" and not is_compiling():
        if not bool(condition.all()):
            raise ValueError(message())
        return
    torch._assert_async(condition.all(), device_message)


def check_ids_2d(ids, name: str = "input_ids", *, allow_empty: bool = False) -> None:
    """``ids`` is an integer (B, T) tensor with T ≥ 1 (T = 0 only with ``allow_empty``).

    An empty batch (B = 0) passes: the models map it to empty outputs. An empty sequence (T = 0) does not: with
    no keys, attention has nothing to normalise over.
    """
    check_integer_tensor(ids, name)
    if ids.dim() != 2 or (not allow_empty and ids.shape[1] == 0):
        need = "(B, T)" if allow_empty else "(B, T) with T ≥ 1"
        raise ValueError(f"{name} must have shape {need}, got {tuple(ids.shape)}")


def check_valid(valid, name: str, shape: tuple[int, ...], *, shape_of: str = "input_ids", hint: str = "") -> None:
    """``valid`` is a bool mask of ``shape``, True at real tokens."""
    if not isinstance(valid, Tensor) or valid.dtype != torch.bool:
        raise TypeError(
            f"{name} must be a bool tensor, True at real tokens and False at padding, got {_type_name(valid)}{hint}"
        )
    if tuple(valid.shape) != tuple(shape):
        raise ValueError(f"{name} must have the shape of {shape_of} {tuple(shape)}, got {tuple(valid.shape)}")


def check_same_shape(tensor, name: str, shape: tuple[int, ...], *, shape_of: str = "input_ids") -> None:
    if not isinstance(tensor, Tensor) or tuple(tensor.shape) != tuple(shape):
        got = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
        raise ValueError(f"{name} must have the shape of {shape_of} {tuple(shape)}, got {got}")


def check_labels(labels, name: str, shape: tuple[int, ...], *, shape_of: str | None = None) -> None:
    """``labels`` is an integer tensor of ``shape`` (class ids, -100 = ignore) — the shape of ``shape_of``."""
    if not isinstance(labels, Tensor) or labels.dtype == torch.bool or labels.is_floating_point():
        raise TypeError(f"{name} must be an integer tensor (torch.long), got {_type_name(labels)}")
    if tuple(labels.shape) != tuple(shape):
        what = "shape" if shape_of is None else f"the shape of {shape_of}"
        raise ValueError(f"{name} must have {what} {tuple(shape)}, got {tuple(labels.shape)}")


try:
    torch.is_autocast_enabled("cpu")
    _AUTOCAST_BY_DEVICE = True  # torch ≥ 2.4
except TypeError:
    _AUTOCAST_BY_DEVICE = False


def autocast_enabled(device_type: str) -> bool:
    """Whether ``torch.autocast`` is on for ``device_type`` ("cpu", "cuda", …) — no host synchronisation."""
    if _AUTOCAST_BY_DEVICE:
        return torch.is_autocast_enabled(device_type)
    if device_type == "cpu":  # torch < 2.4: one function per device type
        return torch.is_autocast_cpu_enabled()
    return torch.is_autocast_enabled()


def check_float_input(x: Tensor, name: str, weight_dtype: torch.dtype | None, module: str) -> None:
    """``x`` is a floating-point tensor of the dtype of the ``module``'s weights (``weight_dtype=None``: any float).

    Under ``torch.autocast`` the dtypes may differ — the matrix products cast float32, float16 and bfloat16
    operands to the autocast dtype — unless one of them is float64, which autocast leaves alone.

    A dtype comparison only: no host synchronisation, nothing that breaks a ``torch.compile`` graph.
    """
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor (B, length, d_model) of hidden states, got {x.dtype}; "
            "token ids go through an embedding first, other tensors need .float()"
        )
    if weight_dtype is None or x.dtype == weight_dtype:
        return
    # Under autocast the matrix products cast float32/float16/bfloat16 operands to one dtype — but never float64.
    float64 = torch.float64 in (x.dtype, weight_dtype)
    if not autocast_enabled(x.device.type) or float64:
        short = {
            torch.float64: ".double()",
            torch.float32: ".float()",
            torch.float16: ".half()",
            torch.bfloat16: ".bfloat16()",
        }
        to_module = short.get(x.dtype, f".to({x.dtype})")
        raise TypeError(
            f"{name} has dtype {x.dtype} but the weights of {module} are {weight_dtype}; convert the input with "
            f"{name}.to({weight_dtype}) or the module with module{to_module}"
            + (" (torch.autocast never casts float64)" if float64 else ", or run under torch.autocast")
        )


def check_width(x, d_model: int, name: str = "x") -> None:
    """``x`` is a tensor (…, d_model)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 0 or x.shape[-1] != d_model:
        raise ValueError(f"{name} must have shape (..., d_model={d_model}), got {tuple(x.shape)}")


# ---- attention arguments --------------------------------------------------------------------------------------


def broadcast_shape(*shapes: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape that ``shapes`` broadcast to (NumPy/PyTorch rules), or None when they do not broadcast.

    Written out rather than ``torch.broadcast_shapes``, which runs through PyTorch's Python reference
    implementation (11–17 µs a call on the project's CPU, against ~1.5 µs here) — a cost paid three times by
    every attention call, for checks alone.
    """
    out: list[int] = []
    for sizes in itertools.zip_longest(*(reversed(tuple(s)) for s in shapes), fillvalue=1):  # right-aligned
        other = {n for n in sizes if n != 1}  # sizes of 1 stretch; all others must agree (0 included)
        if len(other) > 1:
            return None
        out.append(other.pop() if other else 1)
    return tuple(reversed(out))


def _broadcast_error(name: str, got: tuple[int, ...], target: tuple[int, ...]) -> ValueError:
    return ValueError(
        f"{name} of shape {tuple(got)} is not broadcastable to the attention scores of shape "
        f"{tuple(target)} (…, T, S); pad it with singleton dimensions, e.g. (B, 1, 1, S) for key padding"
    )


def check_allowed(allowed: Tensor | None, scores_shape: tuple[int, ...], name: str = "allowed") -> None:
    """Raise an actionable error unless ``allowed`` is a bool tensor broadcastable to ``scores_shape``."""
    if allowed is None:
        return
    if not isinstance(allowed, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of dtype torch.bool, got {type(allowed).__name__}")
    if allowed.dtype != torch.bool:
        raise TypeError(
            f"{name} must have dtype torch.bool (True = may attend), got {allowed.dtype}; "
            "for additive float masks use bias=, for Hugging Face attention_mask use "
            "masks.from_hf_attention_mask()"
        )
    if broadcast_shape(allowed.shape, scores_shape) != tuple(scores_shape):
        raise _broadcast_error(name, tuple(allowed.shape), tuple(scores_shape))


def check_bias(bias: Tensor | None, scores_shape: tuple[int, ...]) -> None:
    """``bias`` is None or a floating-point tensor broadcastable to the scores."""
    if bias is None:
        return
    if not isinstance(bias, Tensor) or not bias.is_floating_point():
        raise TypeError(f"bias must be a floating-point tensor, got {getattr(bias, 'dtype', type(bias))}")
    if broadcast_shape(bias.shape, scores_shape) != tuple(scores_shape):
        raise _broadcast_error("bias", tuple(bias.shape), tuple(scores_shape))


def check_qkv(q: Tensor, k: Tensor, v: Tensor) -> tuple[int, ...]:
    """q (…, T, Dh), k (…, S, Dh), v (…, S, Dv) with broadcastable leading dimensions -> the scores' shape."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < 2:
            raise ValueError(f"{name} must have shape (..., length, width), got {tuple(t.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same width Dh, got q {tuple(q.shape)} and k {tuple(k.shape)}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same length S, got k {tuple(k.shape)} and v {tuple(v.shape)}")
    lead = broadcast_shape(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    if lead is None:
        raise ValueError(
            "the leading (batch, head, …) dimensions of q, k, v must match or broadcast, got "
            f"q {tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)}"
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    return (*lead, q.shape[-2], k.shape[-2])


def check_dropout_p(dropout_p: float) -> None:
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")


# ---- loss arguments ---------------------------------------------------------------------------------------------


def check_loss_inputs(
    logits: Tensor, targets: Tensor, ignore_index: int, label_smoothing: float, reduction: str, reductions: tuple
) -> None:
    """The arguments of ``functional.cross_entropy``."""
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise TypeError(
            f"logits must be a floating-point tensor (…, V), got {getattr(logits, 'dtype', type(logits).__name__)}"
        )
    if not isinstance(targets, Tensor):
        raise TypeError(f"targets must be a tensor of class ids, got {type(targets).__name__}")
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise TypeError(
            f"targets must hold integer class ids (torch.long), got {targets.dtype}; "
            "probability ('soft') targets are not supported — use label_smoothing= for smoothed targets"
        )
    if logits.dim() == 0 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have shape (…, V) with V ≥ 1 classes, got {tuple(logits.shape)}")
    if tuple(targets.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"targets must have the shape of logits without the class dimension: logits {tuple(logits.shape)} "
            f"needs targets {tuple(logits.shape[:-1])}, got {tuple(targets.shape)}"
        )
    if targets.device != logits.device:
        raise ValueError(f"targets are on {targets.device} but logits on {logits.device}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    check_choice("reduction", reduction, reductions)
    check_class_ids(targets, logits.shape[-1], ignore_index)


def check_class_ids(targets: Tensor, n_classes: int, ignore_index: int) -> None:
    """Every target is a class id or ``ignore_index`` — on an accelerator without stopping the host (as
    :func:`check_token_ids`)."""
    bad = (targets != ignore_index) & ((targets < 0) | (targets >= n_classes))

    def message() -> str:
        where = tuple(int(i) for i in bad.nonzero()[0])
        return (
            f"target {int(targets[where])} at position {where} is outside the {n_classes} classes [0, {n_classes}) "
            f"and is not ignore_index={ignore_index}"
        )

    check_all(~bad, message, f"a target is outside the {n_classes} classes and is not ignore_index={ignore_index}")
