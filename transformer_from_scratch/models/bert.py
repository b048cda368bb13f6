r"""BERT — Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding".

    x       = Dropout(LayerNorm(E_token[ids] + E_position[0 … T-1] + E_segment[token_type_ids]))     (B, T, D)
    h_l     = EncoderBlock_l(h_{l-1}),  h_0 = x,  l = 1 … L      post-LN, exact GELU, ε = 1e-12     (B, T, D)
    pooled  = tanh(W h_L[:, 0] + b)                               the [CLS] position                 (B, D)

and for pre-training (§3.1) two heads on top:

    MLM logits = LayerNorm(gelu(W h_L + b)) E_tokenᵀ + b_out       tied to the token embeddings       (B, T, V)
    NSP logits = W pooled + b                                      IsNext = 0 / NotNext = 1           (B, 2)
    loss       = CE(MLM logits, labels at the selected positions) + CE(NSP logits, nsp_labels)

The encoder is the package's :class:`~stacks.Encoder` (``norm_first=False``, ``activation="gelu"``, no final
norm) — the 2017 encoder with GELU instead of ReLU and learned instead of sinusoidal positions. Every
bidirectional position sees every real token: the only mask is key padding, built with :mod:`masks`.

Padding: pass ``valid`` (B, T) bool, True at real tokens, or Hugging Face's ``attention_mask`` (1 = keep);
without either, the mask comes from ``config.pad_id`` when it is set, otherwise every token is real.
Positions count from 0 at the first token, padding or not (right padding keeps them right). Padded *query*
positions still get an output — a function of the real tokens only; poolers and losses must ignore it.

Checkpoints: :meth:`BertModel.from_pretrained` reads a Hugging Face folder (``config.json`` +
``model.safetensors``), e.g. all-MiniLM-L6-v2; key names are translated in :mod:`interop.hf_bert`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import masks
from .._validation import check_bool, check_ids_2d, check_labels, check_same_shape, check_token_ids, check_valid
from ..config import BertConfig
from ..heads import CLSPooler, MLMHead, NSPHead, pretraining_loss
from ..interop import hf_bert
from ..layers import LayerNorm, TokenEmbedding
from ..positional import LearnedPositionalEmbedding
from ..stacks import Encoder

__all__ = ["BertEmbeddings", "BertModel", "BertForPreTraining", "BertOutput", "BertPreTrainingOutput"]


@dataclass(frozen=True)
class BertOutput:
    """What :class:`BertModel` returns.

    last_hidden_state (B, T, D) — the output of the last block; pooled (B, D) — tanh pooler over [CLS] (None for
    a model built with ``with_pooler=False``); hidden_states — L + 1 tensors (B, T, D): the embeddings, then the
    output of every block; attentions — L tensors (B, H, T, T) of attention weights when asked for
    (``return_attention=True``), else None; valid (B, T) bool — the real tokens the encoder attended to (from
    ``valid``, ``attention_mask`` or ``config.pad_id``), None when every token was real. Poolers and losses read it
    to ignore the padded positions.
    """

    last_hidden_state: Tensor
    pooled: Tensor | None
    hidden_states: tuple[Tensor, ...]
    attentions: tuple[Tensor, ...] | None = None
    valid: Tensor | None = None


@dataclass(frozen=True)
class BertPreTrainingOutput:
    """What :class:`BertForPreTraining` returns.

    mlm_logits (B, T, V); nsp_logits (B, 2); loss = mlm_loss + nsp_loss (0-d tensors) when labels were given,
    else None; ``bert`` — the encoder's :class:`BertOutput` (hidden states, pooled output, attentions).
    """

    mlm_logits: Tensor
    nsp_logits: Tensor
    bert: BertOutput
    loss: Tensor | None = None
    mlm_loss: Tensor | None = None
    nsp_loss: Tensor | None = None


class BertEmbeddings(nn.Module):
    """token + learned position + segment embeddings, then LayerNorm and dropout: (B, T) ids -> (B, T, D).

    Sub-modules: ``token`` (:class:`~layers.TokenEmbedding`, unscaled), ``position``
    (:class:`~positional.LearnedPositionalEmbedding`), ``segment`` (a TokenEmbedding over the
    ``type_vocab_size`` segments), ``norm`` (:class:`~layers.LayerNorm`, ε from the config), ``dropout``.
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        c = config
        self.token = TokenEmbedding(c.vocab_size, c.d_model, check_ids=False)  # checked on entry
        self.position = LearnedPositionalEmbedding(c.max_len, c.d_model)
        self.segment = TokenEmbedding(c.type_vocab_size, c.d_model, check_ids=False)
        self.norm = LayerNorm(c.d_model, eps=c.layer_norm_eps, impl=c.impl)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        """Ids already checked by :class:`BertModel` (range included)."""
        x = self.token(input_ids) + self.segment(token_type_ids)  # (B,T,D) + (B,T,D)
        x = self.position(x)  # + P[0 … T-1]: (B,T,D) + (T,D)
        return self.dropout(self.norm(x))


class _BertBase(nn.Module):
    """What both BERT classes share: BERT's initialisation and loading a Hugging Face folder."""

    _pretraining = False  # whether a checkpoint of this class holds the heads too (keys bert.* and cls.*)

    def reset_parameters(self) -> None:
        """BERT's initialisation: every weight matrix and embedding N(0, initializer_range²), biases 0, norms 1/0
        (a tied matrix — the token embedding the MLM decoder reuses — drawn once)."""
        _init_bert_weights(self, self.config.initializer_range)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, dtype: torch.dtype | None = None):
        """Load a Hugging Face folder (``config.json`` + ``model.safetensors``) of this class — a ``BertModel``, or
        a ``BertForPreTraining`` with keys ``bert.*`` and ``cls.*`` — in eval mode.

        See :func:`interop.hf_bert.read_pretrained` for the accepted files and the errors. ``dtype`` defaults to
        float32 whatever the checkpoint stores. No network access: ``path`` must be a folder on disk.
        """
        config, state = hf_bert.read_pretrained(path, pretraining=cls._pretraining)
        model = cls(config).to(torch.float32 if dtype is None else dtype)  # randomly initialised, then overwritten
        model.load_state_dict(state)  # casts every tensor to the model's dtype; a tied matrix is listed twice
        return model.eval()


class BertModel(_BertBase):
    """The BERT encoder: embeddings, L post-LN blocks, the [CLS] pooler.

    Build it from a config — ``BertModel(BertConfig.tiny())`` — or from a Hugging Face folder with
    :meth:`from_pretrained`. Sub-modules: ``embeddings`` (:class:`BertEmbeddings`), ``encoder``
    (:class:`~stacks.Encoder`, blocks in ``encoder.layers``) and ``pooler`` (:class:`~heads.CLSPooler`, or None
    with ``with_pooler=False`` — as Hugging Face's ``add_pooling_layer=False``, for task models that read every
    token and never the pooled vector).

    forward(input_ids (B, T), *, token_type_ids=None (B, T) segment ids, 0 by default, valid=None (B, T) bool,
    attention_mask=None (B, T) of 1/0, return_attention=False) -> :class:`BertOutput`.
    """

    def __init__(self, config: BertConfig, *, with_pooler: bool = True):
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a BertConfig, got {type(config).__name__}")
        check_bool("with_pooler", with_pooler)
        self.config = c = config
        self.embeddings = BertEmbeddings(c)
        # post-LN blocks with exact GELU (BertConfig.block_config); no final norm: every block ends with a LayerNorm
        self.encoder = Encoder(c.block_config(), c.n_layers, final_norm=False)
        self.pooler = CLSPooler(c.d_model) if with_pooler else None
        self.reset_parameters()

    # ---- inputs -----------------------------------------------------------------------------------------

    def _inputs(self, input_ids, token_type_ids, valid, attention_mask) -> tuple[Tensor, Tensor | None]:
        """Check the inputs; return the segment ids (B, T) and the real-token mask (B, T), or None if all are real."""
        c = self.config
        check_ids_2d(input_ids, "input_ids")
        check_token_ids(input_ids, c.vocab_size, "input_ids")
        shape = tuple(input_ids.shape)
        if shape[1] > c.max_len:
            raise ValueError(
                f"input_ids has sequence length {shape[1]}, which exceeds max_len={c.max_len} (the rows of the "
                "position table); truncate the input"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)  # every token in segment A
        else:
            check_ids_2d(token_type_ids, "token_type_ids")
            check_same_shape(token_type_ids, "token_type_ids", shape)
            check_token_ids(token_type_ids, c.type_vocab_size, "token_type_ids", "segment vocabulary")
        if valid is not None and attention_mask is not None:
            raise ValueError("pass either valid= (bool, True at real tokens) or attention_mask= (1/0), not both")
        if attention_mask is not None:
            check_same_shape(attention_mask, "attention_mask", shape)
            allowed = masks.from_hf_attention_mask(attention_mask.to(input_ids.device))  # checks 0/1: (B, 1, 1, T)
            return token_type_ids, allowed[:, 0, 0, :]  # (B, 1, 1, T) -> (B, T)
        if valid is None:
            if c.pad_id is None:
                return token_type_ids, None  # every token is real
            # Deviation from Hugging Face: their BertModel without an attention_mask attends to [PAD] tokens too.
            return token_type_ids, masks.padding_mask_from_ids(input_ids, c.pad_id)  # (B, T)
        check_valid(valid, "valid", shape, hint="; for a Hugging Face 0/1 mask use attention_mask=")
        return token_type_ids, valid.to(input_ids.device)

    def forward(
        self,
        input_ids: Tensor,
        *,
        token_type_ids: Tensor | None = None,
        valid: Tensor | None = None,
        attention_mask: Tensor | None = None,
        return_attention: bool = False,
    ) -> BertOutput:
        token_type_ids, valid = self._inputs(input_ids, token_type_ids, valid, attention_mask)
        allowed = None if valid is None else masks.key_padding(valid)  # (B, T) -> (B, 1, 1, T)
        x = self.embeddings(input_ids, token_type_ids)  # (B, T) -> (B, T, D)
        out = self.encoder(x, allowed=allowed, return_attention=return_attention, return_hidden_states=True)
        return BertOutput(
            last_hidden_state=out.last_hidden_state,  # (B, T, D)
            pooled=None if self.pooler is None else self.pooler(out.last_hidden_state),  # (B, D)
            hidden_states=out.hidden_states,  # L + 1 × (B, T, D)
            attentions=out.attentions,  # L × (B, H, T, T), or None
            valid=valid,  # (B, T) or None
        )


class BertForPreTraining(_BertBase):
    """BERT with both pre-training heads: masked LM (tied to the token embeddings) and next-sentence prediction.

    Sub-modules: ``bert`` (:class:`BertModel`), ``mlm`` (:class:`~heads.MLMHead`, ``mlm.decoder.weight`` *is*
    ``bert.embeddings.token.weight``) and ``nsp`` (:class:`~heads.NSPHead`).

    forward(input_ids, *, token_type_ids=None, valid=None, attention_mask=None, mlm_labels=None (B, T),
    nsp_labels=None (B,), return_attention=False) -> :class:`BertPreTrainingOutput`. ``mlm_labels`` hold the
    original token at the positions selected for prediction and -100 everywhere else (see
    ``objectives/mlm.py``); ``nsp_labels`` are 0 (IsNext) or 1 (NotNext). With labels the output carries
    ``loss = mlm_loss + nsp_loss`` (either one alone when only its labels are given).
    """

    _pretraining = True  # its checkpoints hold the MLM and NSP heads (keys cls.*)

    def __init__(self, config: BertConfig):
        super().__init__()
        self.bert = BertModel(config)
        self.config = config
        c = config
        self.mlm = MLMHead(
            c.d_model,
            c.vocab_size,
            embedding=self.bert.embeddings.token.weight,
            layer_norm_eps=c.layer_norm_eps,
            impl=c.impl,
        )
        self.nsp = NSPHead(c.d_model)
        self.reset_parameters()

    def forward(
        self,
        input_ids: Tensor,
        *,
        token_type_ids: Tensor | None = None,
        valid: Tensor | None = None,
        attention_mask: Tensor | None = None,
        mlm_labels: Tensor | None = None,
        nsp_labels: Tensor | None = None,
        return_attention: bool = False,
    ) -> BertPreTrainingOutput:
        out = self.bert(
            input_ids,
            token_type_ids=token_type_ids,
            valid=valid,
            attention_mask=attention_mask,
            return_attention=return_attention,
        )
        mlm_logits = self.mlm(out.last_hidden_state)  # (B, T, D) -> (B, T, V)
        nsp_logits = self.nsp(out.pooled)  # (B, D) -> (B, 2)
        if mlm_labels is not None:
            check_labels(mlm_labels, "mlm_labels", tuple(input_ids.shape))
        if nsp_labels is not None:
            check_labels(nsp_labels, "nsp_labels", (input_ids.shape[0],))
        if mlm_labels is None and nsp_labels is None:
            return BertPreTrainingOutput(mlm_logits, nsp_logits, out)
        loss, mlm_loss, nsp_loss = pretraining_loss(
            mlm_logits if mlm_labels is not None else None,
            mlm_labels,
            nsp_logits if nsp_labels is not None else None,
            nsp_labels,
            impl=self.config.impl,
        )
        return BertPreTrainingOutput(mlm_logits, nsp_logits, out, loss, mlm_loss, nsp_loss)


def _init_bert_weights(module: nn.Module, std: float) -> None:
    """N(0, std²) for nn.Linear weights and embedding tables, 0 for biases, 1/0 for LayerNorm (as BERT).

    A shared matrix (the token embedding that the MLM decoder reuses) is drawn once.
    """
    drawn: set[int] = set()

    def normal_(p: nn.Parameter) -> None:
        if id(p) not in drawn:
            drawn.add(id(p))
            nn.init.normal_(p, std=std)

    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, nn.Linear):
                normal_(sub.weight)
                if sub.bias is not None:
                    sub.bias.zero_()
            elif isinstance(sub, (TokenEmbedding, LearnedPositionalEmbedding)):
                normal_(sub.weight)
            elif isinstance(sub, LayerNorm):
                sub.weight.fill_(1.0)
                sub.bias.zero_()
            elif isinstance(sub, MLMHead):
                sub.bias.zero_()
