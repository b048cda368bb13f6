r"""Model configurations: frozen dataclasses that validate themselves, with named presets.

Change one field with :func:`dataclasses.replace` (it re-runs the validation)::

    cfg = TransformerConfig.tiny()
    cfg = dataclasses.replace(cfg, norm_first=True)     # or TransformerConfig.tiny(norm_first=True)

A bad value raises a ``ValueError``/``TypeError`` naming the field, what was expected and what was received.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ._validation import (
    check_bool,
    check_choice,
    check_heads,
    check_int,
    check_pad_id,
    check_positive_float,
    check_probability,
)

__all__ = ["IMPLS", "ACTIVATIONS", "NORMS", "BlockConfig", "TransformerConfig", "POSITIONALS"]

IMPLS = ("plain", "kernels", "torch")  # the textbook code, ours with hand-written backward passes, PyTorch's built-ins
ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "swiglu", "gated_gelu")  # see layers.FeedForward
NORMS = ("layer", "rms")  # LayerNorm (Ba et al. 2016) or RMSNorm (Zhang & Sennrich 2019), see blocks.make_norm
POSITIONALS = ("sinusoidal", "learned")  # see positional.py


def _preset(cls, overrides: dict, **fields):
    """``cls(**fields)`` with ``overrides`` applied on top (each one validated)."""
    return dataclasses.replace(cls(**fields), **overrides)


# ---- one block ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockConfig:
    r"""One Transformer block — and so a stack of identical blocks (``stacks.py``). Models derive it from their own
    config: ``TransformerConfig.block_config()``, ``BertConfig.block_config()``, ``GPTConfig.block_config()``.

    Widths: ``d_model`` (D), ``n_heads`` (H, D divisible by H), ``d_ff`` (F).
    Dropout sites: ``dropout`` on each sub-layer's output before the residual addition (paper §5.4),
    ``attention_dropout`` on the attention weights, ``activation_dropout`` on the feed-forward hidden units.
    ``activation``: ``"relu"`` (the paper), ``"gelu"`` (exact, BERT), ``"gelu_tanh"`` (GPT-2) or ``"swiglu"``.
    ``norm``: ``"layer"`` or ``"rms"``, with ε = ``layer_norm_eps``; ``norm_first``: False = post-LN (the paper),
    True = pre-LN (Xiong et al. 2020). ``bias``: biases in the attention and feed-forward projections.
    ``d_kv``: the width of one attention head when it is not D / H (T5; then D need not be divisible by H);
    ``attention_scale``: the factor of the scores q·k (None: 1/√d_head; T5 uses 1).
    ``impl``: which implementation of the functional core the block's layers call — ``"plain"`` (the textbook
    code of ``functional.py``), ``"kernels"`` (hand-written backward passes, ``kernels.py``) or ``"torch"``
    (PyTorch's fused built-ins, ``fused.py``); all three compute the same numbers (``tests/test_impls.py``).
    """

    d_model: int
    n_heads: int
    d_ff: int
    dropout: float = 0.0
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    activation: str = "relu"
    norm: str = "layer"
    norm_first: bool = False
    layer_norm_eps: float = 1e-5
    bias: bool = True
    impl: str = "plain"
    d_kv: int | None = None
    attention_scale: float | None = None

    def __post_init__(self) -> None:
        for name in ("d_model", "n_heads", "d_ff"):
            check_int(name, getattr(self, name), 1)
        if self.d_kv is None:
            check_heads(self.d_model, self.n_heads)
        else:
            check_int("d_kv", self.d_kv, 1)
        if self.attention_scale is not None:
            check_positive_float("attention_scale", self.attention_scale)
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            check_probability(name, getattr(self, name))
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("norm", self.norm, NORMS)
        check_bool("norm_first", self.norm_first)
        check_bool("bias", self.bias)
        check_positive_float("layer_norm_eps", self.layer_norm_eps)
        check_choice("impl", self.impl, IMPLS)

    @property
    def d_head(self) -> int:
        """Width of one head, Dh = D / H (or ``d_kv`` when given)."""
        return self.d_model // self.n_heads if self.d_kv is None else self.d_kv


# ---- the 2017 encoder–decoder ------------------------------------------------------------------------------------


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

    ``impl``: the implementation of the functional core — ``"plain"`` (the textbook), ``"kernels"`` or ``"torch"``
    (see :class:`BlockConfig`; the numbers are the same).
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
    impl: str = "plain"

    def __post_init__(self) -> None:
        check_int("src_vocab_size", self.src_vocab_size, 1)
        check_int("tgt_vocab_size", self.tgt_vocab_size, 1)
        self.block_config()  # checks d_model, n_heads, d_ff, the dropouts, activation, norm_first, eps and impl
        for name in ("n_encoder_layers", "n_decoder_layers", "max_len"):
            check_int(name, getattr(self, name), 1)
        check_choice("positional", self.positional, POSITIONALS)
        if self.positional == "sinusoidal" and self.d_model % 2 != 0:
            raise ValueError(f"sinusoidal positions pair up dimensions, so d_model must be even, got {self.d_model}")
        for name in ("tie_embeddings", "tie_output", "scale_embeddings"):
            check_bool(name, getattr(self, name))
        if self.final_norm is not None:
            check_bool("final_norm", self.final_norm)
        if self.tie_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(
                "tie_embeddings=True shares one embedding table, so src_vocab_size and tgt_vocab_size must be "
                f"equal, got {self.src_vocab_size} and {self.tgt_vocab_size}; use a joint vocabulary or "
                "tie_embeddings=False"
            )
        check_pad_id(self.pad_id, min(self.src_vocab_size, self.tgt_vocab_size))

    def block_config(self) -> BlockConfig:
        """The blocks of both stacks: LayerNorm, post-LN unless ``norm_first``, biases everywhere."""
        return BlockConfig(
            self.d_model,
            self.n_heads,
            self.d_ff,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            activation_dropout=self.activation_dropout,
            activation=self.activation,
            norm_first=self.norm_first,
            layer_norm_eps=self.layer_norm_eps,
            impl=self.impl,
        )

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
        return _preset(
            cls,
            overrides,
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

    @classmethod
    def small(cls, **overrides) -> TransformerConfig:
        """A laptop-sized model for the chapter exercises: D=128, H=4, 3+3 layers, 1000 tokens."""
        return _preset(
            cls,
            overrides,
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

    @classmethod
    def paper_base(cls, **overrides) -> TransformerConfig:
        """The base model of Vaswani et al. 2017, Table 3: N=6, D=512, F=2048, H=8, P_drop=0.1.

        WMT 2014 English–German used a shared source–target BPE vocabulary of about 37,000 tokens (§5.1),
        one embedding matrix for both embedding layers and the pre-softmax projection (§3.4).
        """
        return _preset(
            cls,
            overrides,
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


# ---- BERT ----------------------------------------------------------------------------------------------------

__all__ += ["BertConfig"]


@dataclass(frozen=True)
class BertConfig:
    r"""BERT (Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional Transformers"), §3 and Appendix A.

    Sizes: ``vocab_size`` (V), ``d_model`` (D, the paper's H), ``n_heads`` (H, the paper's A), ``n_layers``
    (the paper's L), ``d_ff`` (F = 4·D in the paper), ``max_len`` (rows of the learned position table, 512)
    and ``type_vocab_size`` (segments A/B: 2).

    The encoder is the 2017 post-LN encoder with exact (erf) GELU and no final norm; the embeddings are
    token + learned position + segment, then LayerNorm and dropout. ``dropout`` (Hugging Face's
    ``hidden_dropout_prob``) is applied after the embeddings and to each sub-layer output before the residual
    addition; ``attention_dropout`` (``attention_probs_dropout_prob``) to the attention weights. Both are 0.1.

    ``layer_norm_eps``: BERT checkpoints use 1e-12, not ``nn.LayerNorm``'s 1e-5 — a difference that shows in
    the outputs of a pretrained model. ``initializer_range``: weights start as N(0, 0.02²), biases at 0.
    ``pad_id``, when set, lets the model derive the padding mask from the token ids when no mask is given
    (Hugging Face's ``BertModel`` never does that: without ``attention_mask`` it attends to padding too).
    ``impl``: the implementation of the functional core (see :class:`BlockConfig`; the numbers are the same).
    """

    vocab_size: int
    d_model: int = 768
    n_heads: int = 12
    n_layers: int = 12
    d_ff: int = 3072
    max_len: int = 512
    type_vocab_size: int = 2
    dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_id: int | None = None
    impl: str = "plain"

    def __post_init__(self) -> None:
        check_int("vocab_size", self.vocab_size, 1)
        self.block_config()  # checks d_model, n_heads, d_ff, the dropouts, eps and impl
        for name in ("n_layers", "max_len", "type_vocab_size"):
            check_int(name, getattr(self, name), 1)
        check_positive_float("initializer_range", self.initializer_range)
        check_pad_id(self.pad_id, self.vocab_size)

    def block_config(self) -> BlockConfig:
        """The 2017 post-LN encoder block with exact (erf) GELU, dropout on the sub-layer outputs and the weights."""
        return BlockConfig(
            self.d_model,
            self.n_heads,
            self.d_ff,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            activation="gelu",  # exact erf GELU (Hendrycks & Gimpel 2016), BERT's "gelu"
            norm_first=False,
            layer_norm_eps=self.layer_norm_eps,
            impl=self.impl,
        )

    @property
    def d_head(self) -> int:
        """Width of one head, Dh = D / H (64 in BERT-base)."""
        return self.d_model // self.n_heads

    # ---- presets -----------------------------------------------------------------------------------------

    @classmethod
    def tiny(cls, **overrides) -> BertConfig:
        """A model for tests and quick demos: V=100, D=32, H=4, 2 layers, F=64, 64 positions, no dropout."""
        return _preset(
            cls,
            overrides,
            vocab_size=100,
            d_model=32,
            n_heads=4,
            n_layers=2,
            d_ff=64,
            max_len=64,
            dropout=0.0,
            attention_dropout=0.0,
        )

    @classmethod
    def mini(cls, **overrides) -> BertConfig:
        """A laptop-sized BERT for pre-training on a CPU: the layer sizes of BERT-Mini (Turc et al. 2019,
        "Well-Read Students Learn Better"): 4 layers, D=256, H=4, F=1024; 128 positions and a vocabulary of
        8000 — pass ``vocab_size=tokenizer.vocab_size`` for the WordPiece vocabulary you trained."""
        return _preset(
            cls,
            overrides,
            vocab_size=8000,
            d_model=256,
            n_heads=4,
            n_layers=4,
            d_ff=1024,
            max_len=128,
        )

    @classmethod
    def base(cls, **overrides) -> BertConfig:
        """BERT-base (Devlin et al. 2019, §3): L=12, H=768, A=12, F=3072, 512 positions, 2 segments, the
        30,522-token uncased WordPiece vocabulary — "Total Parameters=110M"."""
        return _preset(
            cls,
            overrides,
            vocab_size=30_522,
            d_model=768,
            n_heads=12,
            n_layers=12,
            d_ff=3072,
            max_len=512,
            type_vocab_size=2,
        )


# ---- GPT (decoder-only) ------------------------------------------------------------------------------------

__all__ += ["GPTConfig", "GPT_POSITIONALS", "ROPE_CONVENTIONS"]

GPT_POSITIONALS = ("learned", "rope")  # a learned table added to the embeddings (GPT-2), or RoPE (Llama)
ROPE_CONVENTIONS = ("half", "interleaved")  # see functional.apply_rope


@dataclass(frozen=True)
class GPTConfig:
    r"""A decoder-only language model: GPT-2 (Radford et al. 2019) and, from the same parts, a Llama-style model.

    Sizes: ``vocab_size`` (V), ``d_model`` (D), ``n_heads`` (H, D divisible by H), ``n_layers`` (L), ``d_ff``
    (F; GPT-2 uses 4·D, Llama ≈ 8/3·D for its three SwiGLU matrices) and ``max_len`` (the context: rows of the
    learned position table, or the longest sequence a RoPE model is meant for).

    GPT-2 (the defaults): token + learned positions, pre-LN blocks with a final LayerNorm (ε = 1e-5), tanh GELU
    (``"gelu_tanh"``, GPT-2's ``gelu_new``), biases everywhere, the LM head tied to the token embedding. Dropout
    sites as in GPT-2: ``embedding_dropout`` (``embd_pdrop``) on the sum of token and position embeddings,
    ``attention_dropout`` (``attn_pdrop``) on the attention weights, ``dropout`` (``resid_pdrop``) on each
    sub-layer output before the residual addition. All three are 0.1 in GPT-2.

    Modern options: ``positional="rope"`` (no position table; queries and keys rotated, ``rope_theta``,
    ``rope_convention`` ``"half"`` as Llama / GPT-NeoX or ``"interleaved"`` as RoFormer / GPT-J), ``norm="rms"``,
    ``activation="swiglu"``, ``bias=False``, ``tie_head=False`` — all together: :meth:`llama_tiny`.

    ``pad_id``, when set, lets the model derive the padding mask from the token ids when none is given.
    ``initializer_range``: weights start as N(0, 0.02²); the projections that write into the residual stream
    (attention ``out_proj`` and feed-forward ``w2``) as N(0, 0.02² / (2·L)), GPT-2's scaled initialisation.
    ``impl``: the implementation of the functional core — ``"plain"`` (the textbook), ``"kernels"`` or ``"torch"``
    (see :class:`BlockConfig`; the numbers are the same).
    """

    vocab_size: int
    d_model: int = 768
    n_heads: int = 12
    n_layers: int = 12
    d_ff: int = 3072
    max_len: int = 1024
    dropout: float = 0.1
    embedding_dropout: float = 0.1
    attention_dropout: float = 0.1
    activation: str = "gelu_tanh"
    norm: str = "layer"
    layer_norm_eps: float = 1e-5
    positional: str = "learned"
    rope_theta: float = 10000.0
    rope_convention: str = "half"
    bias: bool = True
    tie_head: bool = True
    initializer_range: float = 0.02
    pad_id: int | None = None
    impl: str = "plain"

    def __post_init__(self) -> None:
        check_int("vocab_size", self.vocab_size, 1)
        self.block_config()  # checks d_model, n_heads, d_ff, dropout, attention_dropout, activation, norm, eps, bias
        for name in ("n_layers", "max_len"):
            check_int(name, getattr(self, name), 1)
        check_probability("embedding_dropout", self.embedding_dropout)
        check_choice("positional", self.positional, GPT_POSITIONALS)
        check_choice("rope_convention", self.rope_convention, ROPE_CONVENTIONS)
        if self.positional == "rope" and self.d_head % 2 != 0:
            raise ValueError(
                f"rotary embeddings rotate pairs of dimensions, so the head width d_model / n_heads must be even, "
                f"got {self.d_model} / {self.n_heads} = {self.d_head}"
            )
        check_positive_float("initializer_range", self.initializer_range)
        check_positive_float("rope_theta", self.rope_theta)
        if not self.rope_theta > 1:
            raise ValueError(f"rope_theta must be > 1 (the base of the rotary frequencies), got {self.rope_theta}")
        check_bool("tie_head", self.tie_head)
        check_pad_id(self.pad_id, self.vocab_size)

    def block_config(self) -> BlockConfig:
        """GPT-2's pre-LN block (or Llama's, by configuration): dropout on the sub-layer outputs and the weights."""
        return BlockConfig(
            self.d_model,
            self.n_heads,
            self.d_ff,
            dropout=self.dropout,  # resid_pdrop: on each sub-layer output, before the residual addition
            attention_dropout=self.attention_dropout,  # attn_pdrop: on the attention weights
            activation=self.activation,
            norm=self.norm,
            norm_first=True,
            layer_norm_eps=self.layer_norm_eps,
            bias=self.bias,
            impl=self.impl,
        )

    @property
    def d_head(self) -> int:
        """Width of one head, Dh = D / H (64 in GPT-2 small)."""
        return self.d_model // self.n_heads

    # ---- presets -----------------------------------------------------------------------------------------

    @classmethod
    def tiny(cls, **overrides) -> GPTConfig:
        """A GPT-2-shaped model for tests and demos: V=64, D=32, H=4, 2 layers, F=128, 64 positions, no dropout."""
        return _preset(
            cls,
            overrides,
            vocab_size=64,
            d_model=32,
            n_heads=4,
            n_layers=2,
            d_ff=128,
            max_len=64,
            dropout=0.0,
            embedding_dropout=0.0,
            attention_dropout=0.0,
        )

    @classmethod
    def small(cls, **overrides) -> GPTConfig:
        """A laptop-sized GPT-2 for language-model training on a CPU: V=1000, D=128, H=4, 4 layers, F=512,
        256 positions, dropout 0.1 — pass ``vocab_size=tokenizer.vocab_size`` for your tokenizer."""
        return _preset(
            cls,
            overrides,
            vocab_size=1000,
            d_model=128,
            n_heads=4,
            n_layers=4,
            d_ff=512,
            max_len=256,
        )

    @classmethod
    def gpt2_small(cls, **overrides) -> GPTConfig:
        """GPT-2 small (Radford et al. 2019, Table 2: 12 layers, d_model 768): 50,257 byte-level BPE tokens, a
        1024-token context, 12 heads, F = 3072 — 124,439,808 parameters with the tied LM head ("117M" in the
        paper, which counted differently)."""
        return _preset(
            cls,
            overrides,
            vocab_size=50_257,
            d_model=768,
            n_heads=12,
            n_layers=12,
            d_ff=3072,
            max_len=1024,
        )

    @classmethod
    def llama_tiny(cls, **overrides) -> GPTConfig:
        """A tiny Llama-style decoder (Touvron et al. 2023): RoPE (rotate-half), RMSNorm (ε = 1e-6), SwiGLU,
        bias-free projections, untied head, no dropout — V=64, D=32, H=4, 2 layers, F=88 (≈ 8/3·D)."""
        return _preset(
            cls,
            overrides,
            vocab_size=64,
            d_model=32,
            n_heads=4,
            n_layers=2,
            d_ff=88,
            max_len=64,
            dropout=0.0,
            embedding_dropout=0.0,
            attention_dropout=0.0,
            activation="swiglu",
            norm="rms",
            layer_norm_eps=1e-6,
            positional="rope",
            bias=False,
            tie_head=False,
        )


# ---- XLNet (permuted language model) ---------------------------------------------------------------------------

__all__ += ["XLNetConfig"]


@dataclass(frozen=True)
class XLNetConfig:
    r"""XLNet (Yang et al. 2019, "XLNet: Generalized Autoregressive Pretraining for Language Understanding").

    Sizes: ``vocab_size`` (V), ``d_model`` (D), ``n_heads`` (H), ``n_layers`` (L), ``d_ff`` (F). There is no
    ``max_len``: positions enter only as sinusoids of the *relative* distance i − j (Transformer-XL, Dai et al.
    2019), computed for whatever length comes in.

    Blocks are post-LN with exact GELU and LayerNorm ε = ``layer_norm_eps`` (1e-12, as the released checkpoints);
    attention and output projections have no bias, the feed-forward layers do. ``dropout`` is applied to the
    embeddings, to the relative-position sinusoids, after the activation, and to each sub-layer output before the
    residual addition (Hugging Face's ``dropout``); ``attention_dropout`` to the attention weights (the original
    code's ``dropatt``). ``initializer_range``: every weight matrix, embedding, bias vector of the relative
    attention and the mask embedding start as N(0, 0.02²). ``pad_id``, when set, gives the padding mask when
    none is passed. ``impl``: the implementation of the functional core (see :class:`BlockConfig`).
    """

    vocab_size: int
    d_model: int = 768
    n_heads: int = 12
    n_layers: int = 12
    d_ff: int = 3072
    dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_id: int | None = None
    impl: str = "plain"

    def __post_init__(self) -> None:
        check_int("vocab_size", self.vocab_size, 1)
        check_int("n_layers", self.n_layers, 1)
        self.block_config()  # checks d_model, n_heads, d_ff, the dropouts, eps and impl
        if self.d_model % 2 != 0:
            raise ValueError(f"d_model={self.d_model} must be even: the position sinusoids come in sin/cos pairs")
        check_positive_float("initializer_range", self.initializer_range)
        check_pad_id(self.pad_id, self.vocab_size)

    def block_config(self) -> BlockConfig:
        """Post-LN block with exact GELU; dropout after the activation as well (XLNet's feed-forward)."""
        return BlockConfig(
            self.d_model,
            self.n_heads,
            self.d_ff,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            activation_dropout=self.dropout,
            activation="gelu",
            norm_first=False,
            layer_norm_eps=self.layer_norm_eps,
            impl=self.impl,
        )

    @property
    def d_head(self) -> int:
        """Width of one head, Dh = D / H (64 in xlnet-base)."""
        return self.d_model // self.n_heads

    @classmethod
    def tiny(cls, **overrides) -> XLNetConfig:
        """A model for tests and quick demos: V=100, D=32, H=4, 2 layers, F=64, no dropout."""
        return _preset(
            cls,
            overrides,
            vocab_size=100,
            d_model=32,
            n_heads=4,
            n_layers=2,
            d_ff=64,
            dropout=0.0,
            attention_dropout=0.0,
        )

    @classmethod
    def base(cls, **overrides) -> XLNetConfig:
        """The sizes of xlnet-base-cased (Yang et al. 2019, §3.1: the BERT-base shape): L=12, D=768, H=12,
        F=3072 and the 32,000-token SentencePiece vocabulary."""
        return _preset(cls, overrides, vocab_size=32_000, d_model=768, n_heads=12, n_layers=12, d_ff=3072)


# ---- T5 (text-to-text encoder–decoder) ------------------------------------------------------------------------

__all__ += ["T5Config", "T5_FEED_FORWARDS"]

T5_FEED_FORWARDS = ("relu", "gated_gelu")  # T5 1.0 and T5 v1.1, see layers.FeedForward


@dataclass(frozen=True)
class T5Config:
    r"""T5 (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer").

    Sizes: ``vocab_size`` (V), ``d_model`` (D), ``d_kv`` (the width of one head, independent of D / H), ``d_ff``
    (F), ``n_heads`` (H), ``n_layers`` (encoder blocks) and ``n_decoder_layers`` (None: as many as the encoder).
    Positions: a learned scalar per head and relative-distance bucket — ``num_buckets`` buckets, logarithmic up to
    ``max_distance`` (see ``positional.relative_position_bucket``); there is no ``max_len``.

    ``feed_forward``: ``"relu"`` (T5 1.0: w2(relu(w1 x))) or ``"gated_gelu"`` (T5 v1.1: w2(gelu_tanh(w1 x) ⊙ w3 x)).
    ``dropout``: one rate everywhere T5 drops — after the embeddings, on the attention weights, after the
    feed-forward activation, on each sub-layer output before the residual addition and after each stack's final
    norm. ``layer_norm_eps``: ε of the RMSNorms. ``tie_word_embeddings``: the output projection is the shared
    embedding matrix, and the decoder output is multiplied by D^-½ before it (Mesh TensorFlow's convention).

    Special ids: ``pad_id`` (padding; also the loss's replacement for -100 in shifted labels), ``decoder_start_id``
    (the first decoder input; T5 uses the pad id), ``eos_id``. ``initializer_factor`` scales every initial
    standard deviation (1.0 as the released models). ``impl``: the implementation of the functional core (see
    :class:`BlockConfig`).
    """

    vocab_size: int
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 2048
    n_heads: int = 8
    n_layers: int = 6
    n_decoder_layers: int | None = None
    num_buckets: int = 32
    max_distance: int = 128
    feed_forward: str = "relu"
    dropout: float = 0.1
    layer_norm_eps: float = 1e-6
    tie_word_embeddings: bool = True
    pad_id: int = 0
    decoder_start_id: int = 0
    eos_id: int = 1
    initializer_factor: float = 1.0
    impl: str = "plain"

    def __post_init__(self) -> None:
        check_int("vocab_size", self.vocab_size, 1)
        for name in ("d_model", "d_kv", "d_ff", "n_heads", "n_layers"):
            check_int(name, getattr(self, name), 1)
        if self.n_decoder_layers is not None:
            check_int("n_decoder_layers", self.n_decoder_layers, 1)
        check_int("num_buckets", self.num_buckets, 2)
        check_int("max_distance", self.max_distance, 1)
        check_choice("feed_forward", self.feed_forward, T5_FEED_FORWARDS)
        check_probability("dropout", self.dropout)
        check_positive_float("layer_norm_eps", self.layer_norm_eps)
        check_bool("tie_word_embeddings", self.tie_word_embeddings)
        for name in ("pad_id", "decoder_start_id", "eos_id"):
            check_pad_id(getattr(self, name), self.vocab_size, name)
            if getattr(self, name) is None:
                raise ValueError(f"{name} must be a token id in [0, {self.vocab_size}), got None")
        check_positive_float("initializer_factor", self.initializer_factor)
        check_choice("impl", self.impl, IMPLS)

    @property
    def n_decoder(self) -> int:
        """The decoder's depth: ``n_decoder_layers``, or ``n_layers`` when it is None."""
        return self.n_layers if self.n_decoder_layers is None else self.n_decoder_layers

    def block_config(self) -> BlockConfig:
        """Pre-norm RMSNorm blocks without biases, heads of width d_kv, unscaled scores, one dropout rate."""
        return BlockConfig(
            self.d_model,
            self.n_heads,
            self.d_ff,
            dropout=self.dropout,
            attention_dropout=self.dropout,
            activation_dropout=self.dropout,
            activation=self.feed_forward,
            norm="rms",
            norm_first=True,
            layer_norm_eps=self.layer_norm_eps,
            bias=False,
            impl=self.impl,
            d_kv=self.d_kv,
            attention_scale=1.0,
        )

    @classmethod
    def tiny(cls, **overrides) -> T5Config:
        """A model for tests and quick demos: V=100, D=32, d_kv=8, F=64, H=4, 2 + 2 layers, 8 buckets up to
        distance 20, no dropout."""
        return _preset(
            cls,
            overrides,
            vocab_size=100,
            d_model=32,
            d_kv=8,
            d_ff=64,
            n_heads=4,
            n_layers=2,
            num_buckets=8,
            max_distance=20,
            dropout=0.0,
        )

    @classmethod
    def small(cls, **overrides) -> T5Config:
        """The sizes of t5-small (Raffel et al. 2020, §3.7 / Table 14): V=32128, D=512, d_kv=64, F=2048, H=8,
        6 + 6 layers, ReLU, 32 buckets up to distance 128 — about 60.5 million parameters."""
        return _preset(cls, overrides, vocab_size=32_128)
