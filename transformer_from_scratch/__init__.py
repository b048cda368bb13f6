"""transformer_from_scratch — a readable, proven-correct Transformer library and the course built on it."""

__version__ = "0.1.0"

from . import functional, masks  # noqa: E402
from .attention import MultiHeadAttention  # noqa: E402

__all__ = ["__version__", "functional", "masks", "MultiHeadAttention"]
