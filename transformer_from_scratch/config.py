r"""Model configurations: frozen dataclasses that validate themselves, with named presets.

Change one field with :func:`dataclasses.replace` (it re-runs the validation)::

    cfg = TransformerConfig.tiny()
    cfg = dataclasses.replace(cfg, norm_first=True)     # or TransformerConfig.tiny(norm_first=True)

A bad value raises a ``ValueError``/``TypeError`` naming the field, what was expected and what was received.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["TransformerConfig", "ACTIVATIONS", "POSITIONALS"]

ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "swiglu")  # see layers.FeedForward
POSITIONALS = ("sinusoidal", "learned")  # see positional.py


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be ≥ {minimum}, got {value}")


def _check_probability(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a float in [0, 1), got {type(value).__name__} {value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def _check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")


@dataclass(frozen=True)
class TransformerConfig:
    r"""The encoder–decoder Transformer of Vaswani et al. 2017 ("Attention Is All You Need").

    Sizes: ``d_model`` (D), ``n_heads`` (H, D divisible by H), ``d_ff`` (F), ``n_encoder_layers`` and
    ``n_decoder_layers`` (N = 6 each in the paper), ``max_len`` (longest sequence the positional table covers).

    Dropout (paper §5.4, P_drop = 0.1 for the base model): ``dropout`` is applied to each sub-layer's output
    before the residual addition, and to the sum of embeddings and positional encodings. The paper specifies
    nothing else, so ``attention_dropout`` (on the attention weights) and ``activation_dropout`` (on the
    feed-forward hidden units) default to 0; ``nn.Transformer`` uses ``dropout`` for all three.

    Normalisation: ``norm_first=False`` is the paper's post-LN, LayerNorm(x + Sublayer(x)); ``True`` is pre-LN
    (Xiong et al. 2020). ``final_norm`` adds a LayerNorm after each stack; ``None`` means "exactly when
    ``norm_first``" (pre-LN needs it, the paper has none). ``nn.Transformer`` always has both final norms, so
    a faithful copy of a post-LN ``nn.Transformer`` sets ``final_norm=True``.

    Embeddings: ``scale_embeddings`` multiplies them by √D (§3.4); ``tie_embeddings`` shares one table between
    source and target (needs equal vocabularies); ``tie_output`` makes the output projection ("generator")
    the target embedding matrix (§3.4, Press & Wolf 2017). ``positional`` is ``"sinusoidal"`` (§3.5) or
    ``"learned"``. ``pad_id``, when set, lets the model derive padding masks from token ids.
    """

    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 512
    n_heads: int = 8
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    d_ff: int = 2048
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    max_len: int = 512
    activation: str = "relu"
    norm_first: bool = False
    final_norm: bool | None = None
    layer_norm_eps: float = 1e-5
    tie_embeddings: bool = False
    tie_output: bool = False
    scale_embeddings: bool = True
    positional: str = "sinusoidal"
    pad_id: int | None = None

    def __post_init__(self) -> None:
        _check_int("src_vocab_size", self.src_vocab_size, 1)
        _check_int("tgt_vocab_size", self.tgt_vocab_size, 1)
        _check_int("d_model", self.d_model, 1)
        _check_int("n_heads", self.n_heads, 1)
        if self.d_model % self.n_heads != 0:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                f"choose d_model as a multiple of n_heads (e.g. {self.n_heads * max(1, self.d_model // self.n_heads)})"
            )
        _check_int("n_encoder_layers", self.n_encoder_layers, 1)
        _check_int("n_decoder_layers", self.n_decoder_layers, 1)
        _check_int("d_ff", self.d_ff, 1)
        _check_int("max_len", self.max_len, 1)
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            _check_probability(name, getattr(self, name))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.positional not in POSITIONALS:
            raise ValueError(f"positional must be one of {POSITIONALS}, got {self.positional!r}")
        if self.positional == "sinusoidal" and self.d_model % 2 != 0:
            raise ValueError(f"sinusoidal positions pair up dimensions, so d_model must be even, got {self.d_model}")
        for name in ("norm_first", "tie_embeddings", "tie_output", "scale_embeddings"):
            _check_bool(name, getattr(self, name))
        if self.final_norm is not None:
            _check_bool("final_norm", self.final_norm)
        if isinstance(self.layer_norm_eps, bool) or not isinstance(self.layer_norm_eps, int | float):
            raise TypeError(f"layer_norm_eps must be a positive float, got {self.layer_norm_eps!r}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be > 0, got {self.layer_norm_eps}")
        if self.tie_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(
                "tie_embeddings=True shares one embedding table, so src_vocab_size and tgt_vocab_size must be "
                f"equal, got {self.src_vocab_size} and {self.tgt_vocab_size}; use a joint vocabulary or "
                "tie_embeddings=False"
            )
        if self.pad_id is not None:
            _check_int("pad_id", self.pad_id, 0)
            smallest = min(self.src_vocab_size, self.tgt_vocab_size)
            if self.pad_id >= smallest:
                raise ValueError(f"pad_id={self.pad_id} is outside the vocabulary: it must be < {smallest}")

    @property
    def d_head(self) -> int:
        """Width of one head, Dh = D / H."""
        return self.d_model // self.n_heads

    @property
    def has_final_norm(self) -> bool:
        """Whether each stack ends with a LayerNorm (``final_norm``, defaulting to ``norm_first``)."""
        return self.norm_first if self.final_norm is None else self.final_norm

    # ---- presets -----------------------------------------------------------------------------------------

    @classmethod
    def tiny(cls, **overrides) -> TransformerConfig:
        """A model that trains in seconds on a CPU (toy tasks, tests): D=32, H=4, 2+2 layers, 32 tokens."""
        base = cls(
            src_vocab_size=32,
            tgt_vocab_size=32,
            d_model=32,
            n_heads=4,
            n_encoder_layers=2,
            n_decoder_layers=2,
            d_ff=64,
            dropout=0.0,
            max_len=64,
        )
        return dataclasses.replace(base, **overrides)

    @classmethod
    def small(cls, **overrides) -> TransformerConfig:
        """A laptop-sized model for the chapter exercises: D=128, H=4, 3+3 layers, 1000 tokens."""
        base = cls(
            src_vocab_size=1000,
            tgt_vocab_size=1000,
            d_model=128,
            n_heads=4,
            n_encoder_layers=3,
            n_decoder_layers=3,
            d_ff=512,
            dropout=0.1,
            max_len=256,
        )
        return dataclasses.replace(base, **overrides)

    @classmethod
    def paper_base(cls, **overrides) -> TransformerConfig:
        """The base model of Vaswani et al. 2017, Table 3: N=6, D=512, F=2048, H=8, P_drop=0.1.

        WMT 2014 English–German used a shared source–target BPE vocabulary of about 37,000 tokens (§5.1),
        one embedding matrix for both embedding layers and the pre-softmax projection (§3.4).
        """
        base = cls(
            src_vocab_size=37_000,
            tgt_vocab_size=37_000,
            d_model=512,
            n_heads=8,
            n_encoder_layers=6,
            n_decoder_layers=6,
            d_ff=2048,
            dropout=0.1,
            max_len=512,
            tie_embeddings=True,
            tie_output=True,
        )
        return dataclasses.replace(base, **overrides)
