"""Oracle: Hugging Face ``T5ForConditionalGeneration`` built offline from a small config, weights through interop.hf_t5.

The config is chosen so that shortcuts fail: d_kv · H = 24 ≠ d_model = 32, an encoder of 2 blocks and a decoder of
3, 8 buckets with max_distance 20 and sequences longer than 20 (every bucket kind is used: exact, logarithmic and
the last one, in both directions), ``relu`` and ``gated-gelu`` feed-forwards, tied (scaled) and untied heads.
Weights: T5's own initialisation (Hugging Face's, or our ``reset_parameters``: the same scales, W^Q with the
1/√d_kv folded in), with what it starts constant or small redrawn (:func:`perturb_`): RMSNorm gains 1 + N(0, 0.3²),
relative bias tables N(0, 1) — the size of the scores, so a wrong bucket changes the outputs — and an untied head
N(0, 1) of its own.

Compared: logits, loss and the encoder output, with padding in the encoder (``attention_mask``) and in the decoder
(labels ending with EOS and -100 after it, ``decoder_attention_mask``), at *every* position — padded rows too:
right padding leaves each query at least one key (position 0), so no row is fully masked and both sides compute
the same numbers everywhere. Tolerances: float64 1e-10 absolute; float32 1e-5 absolute + 1e-5 relative. Measured
max |ours − theirs| on this machine (Hugging Face -> ours, forward): float64 ≤ 2.1e-14 on the logits, ≤ 2.2e-15
on the encoder output and the loss; float32 ≤ 3.7e-6 on the tied logits (|logit| ≤ 4.7), 7.6e-6 / 1.4e-5 on the
untied ones (|logit| up to 25: relative ≤ 8.6e-6), ≤ 1.2e-6 on the encoder output, ≤ 1.9e-6 on the loss; ours ->
Hugging Face: ≤ 1.8e-6 tied, ≤ 1.1e-5 untied. Hugging Face's own float32 logits are as far from its float64 ones
(up to 1.2e-5 untied), so the relative part of the float32 tolerance is float32 rounding, not a difference.

Float64 needs one patch of the oracle: Hugging Face's ``T5LayerNorm`` computes the mean square in float32 whatever
the model's dtype (``hidden_states.to(torch.float32).pow(2).mean(-1)``, kept for half precision), which alone
leaves ~1e-7 relative errors; :func:`float64_layer_norm` runs the same formula in the input's dtype. The
float32 runs use Hugging Face's code unpatched.

Transformers ≥ 5 always builds ``lm_head`` tied to ``shared`` (``tie_word_embeddings=False`` only turns the
D**-0.5 scaling off, as ``scale_decoder_outputs``); an untied oracle gets its own head here by replacing the
parameter, as ``from_pretrained`` does when the two matrices of a checkpoint differ.

Decoding, against ``generate(..., use_cache=False)``: in transformers 5.25 its KV cache has
``config.num_hidden_layers`` layers — T5's alias of ``num_layers``, the *encoder* depth — so a deeper decoder
fails with an IndexError; without the cache Hugging Face recomputes every step (ours decodes with its cache).
Greedy generation equals ``generate(do_sample=False, num_beams=1)``, token for token, PAD after EOS included.
Beam search equals ``generate(num_beams=3, length_penalty=1.0, early_stopping="never")``: with that flag Hugging
Face stops a batch element only when no live beam can beat its worst finished hypothesis even with every later
token at probability 1 and the longest length (max_new_tokens) — our ``generation.beam_search`` rule; both score
a hypothesis log p / (generated tokens, EOS included)^α and let only an EOS ranked in the top ``num_beams`` finish.
``early_stopping=True`` is a different rule (stop as soon as ``num_beams`` hypotheses have finished, though a live
beam could still beat them — it answers differently on the batches used here), and HF's default ``False`` another
(it bounds the live beams at the *current* length); neither is compared.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import safetensors.torch as safetensors_torch
import torch
import transformers
from helpers import randomize_hf_
from transformers.models.t5 import modeling_t5

from transformer_from_scratch.config import T5Config
from transformer_from_scratch.interop import hf_t5
from transformer_from_scratch.models.t5 import T5ForConditionalGeneration, T5Model

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=0.0, atol=1e-10)}
V, B, S, T = 64, 3, 25, 23
PAD, EOS, START = 0, 1, 0
SRC_LENGTHS, TGT_LENGTHS = [25, 17, 6], [23, 14, 9]
HF_CONFIG = dict(
    vocab_size=V,
    d_model=32,
    d_kv=6,  # H · d_kv = 24 ≠ d_model
    d_ff=48,
    num_layers=2,
    num_decoder_layers=3,
    num_heads=4,
    relative_attention_num_buckets=8,
    relative_attention_max_distance=20,  # < S and T: the last bucket is reached
    dropout_rate=0.0,
    pad_token_id=PAD,
    eos_token_id=EOS,
    decoder_start_token_id=START,
    attn_implementation="eager",
)
FEED_FORWARDS = ("relu", "gated-gelu")


def perturb_(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Keep T5's own initialisation for the matrices (Hugging Face's, or our ``reset_parameters``: the same
    scales), but redraw what it starts at a constant or small: RMSNorm gains 1 + N(0, 0.3²) instead of 1, and the
    relative position bias tables N(0, 1) — the size of the attention scores — instead of N(0, 1/D)."""
    randomize_hf_(model, seed, matrices=False)  # the 1-D parameters: the norm gains
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("relative_attention_bias.weight", "position_bias.embedding.weight")):
                p.copy_(torch.randn(p.shape, generator=g))
    return model


def hf_t5_model(seed: int, feed_forward: str = "relu", tied: bool = True, *, cls=None, **overrides):
    """A Hugging Face T5 with random weights (see :func:`perturb_`); ``tied=False`` gives it its own LM head,
    N(0, 1) as T5 initialises one, and no output scaling."""
    torch.manual_seed(seed)  # HF initialises from the global generator
    config = transformers.T5Config(
        **{**HF_CONFIG, "feed_forward_proj": feed_forward, "tie_word_embeddings": tied, **overrides}
    )
    hf = (cls or transformers.T5ForConditionalGeneration)(config)
    if not tied and hasattr(hf, "lm_head"):  # transformers >= 5 starts with lm_head = shared
        hf.lm_head.weight = torch.nn.Parameter(torch.randn(hf.lm_head.weight.shape))
    return perturb_(hf, seed).eval()


def ours_from(hf, dtype: torch.dtype = torch.float32) -> T5ForConditionalGeneration:
    """Our model with the Hugging Face model's config and weights, in ``dtype`` (moved there before loading, so
    float64 weights are not rounded through float32)."""
    config, state = hf_t5.read_hf_model(hf)
    ours = T5ForConditionalGeneration(config).to(dtype)
    ours.load_state_dict(state)
    return ours.eval()


def float64_layer_norm(monkeypatch) -> None:
    """Hugging Face's T5LayerNorm with the mean square in the input's dtype (see the module docstring)."""

    def forward(self, hidden_states):
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))

    monkeypatch.setattr(modeling_t5.T5LayerNorm, "forward", forward)


def lengths_mask(lengths: list[int], width: int) -> torch.Tensor:
    return torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]  # (B, width) bool, True = real


def batch(hf, seed: int) -> dict[str, torch.Tensor]:
    """A padded batch: source ids (B, S) with PAD after each row's length, labels (B, T) ending with EOS and -100
    after it, the decoder inputs shifted right by Hugging Face's own ``_shift_right``, and both masks."""
    g = torch.Generator().manual_seed(seed)
    valid = lengths_mask(SRC_LENGTHS, S)
    decoder_valid = lengths_mask(TGT_LENGTHS, T)
    ids = torch.randint(2, V, (B, S), generator=g).masked_fill(~valid, PAD)  # no PAD or EOS inside a row
    labels = torch.randint(2, V, (B, T), generator=g).masked_fill(~decoder_valid, -100)
    labels[torch.arange(B), torch.tensor(TGT_LENGTHS) - 1] = EOS
    return dict(ids=ids, valid=valid, labels=labels, decoder_ids=hf._shift_right(labels), decoder_valid=decoder_valid)


def max_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


# ---- Hugging Face -> ours: the forward pass ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("feed_forward", FEED_FORWARDS)
def test_logits_loss_and_encoder_output_equal_hugging_face(feed_forward, tied, dtype, monkeypatch):
    hf = hf_t5_model(seed=1, feed_forward=feed_forward, tied=tied).to(dtype)
    if dtype == torch.float64:
        float64_layer_norm(monkeypatch)
    ours = ours_from(hf, dtype)
    assert ours.config.tie_word_embeddings == tied and ours.config.feed_forward == feed_forward.replace("-", "_")
    x = batch(hf, seed=2)
    with torch.no_grad():
        theirs = hf(
            input_ids=x["ids"],
            attention_mask=x["valid"].long(),
            decoder_input_ids=x["decoder_ids"],
            decoder_attention_mask=x["decoder_valid"].long(),
            labels=x["labels"],
        )
        mine = ours(x["ids"], x["decoder_ids"], valid=x["valid"], decoder_valid=x["decoder_valid"], labels=x["labels"])
    assert mine.logits.dtype == dtype and mine.logits.shape == (B, T, V)
    torch.testing.assert_close(mine.logits, theirs.logits, **TOL[dtype])
    torch.testing.assert_close(mine.loss, theirs.loss, **TOL[dtype])
    torch.testing.assert_close(mine.encoder_last_hidden_state, theirs.encoder_last_hidden_state, **TOL[dtype])
    assert theirs.logits.abs().max() > 1.0  # logits of order 1: an absolute tolerance means something


@pytest.mark.parametrize("feed_forward", FEED_FORWARDS)
def test_labels_only_call_shifts_right_like_hugging_face(feed_forward):
    hf = hf_t5_model(seed=3, feed_forward=feed_forward)
    ours = ours_from(hf)
    x = batch(hf, seed=4)
    assert torch.equal(ours.shift_right(x["labels"]), hf._shift_right(x["labels"]))
    assert (ours.shift_right(x["labels"])[:, 0] == START).all() and (ours.shift_right(x["labels"]) >= 0).all()
    with torch.no_grad():
        theirs = hf(input_ids=x["ids"], attention_mask=x["valid"].long(), labels=x["labels"])
        mine = ours(x["ids"], valid=x["valid"], labels=x["labels"])
    torch.testing.assert_close(mine.logits, theirs.logits, **TOL[torch.float32])
    torch.testing.assert_close(mine.loss, theirs.loss, **TOL[torch.float32])


def test_padding_from_pad_ids_equals_hugging_face_attention_mask():
    """Without ``valid`` our encoder masks the PAD ids; Hugging Face needs the attention_mask spelled out."""
    hf = hf_t5_model(seed=5)
    ours = ours_from(hf)
    x = batch(hf, seed=6)
    with torch.no_grad():
        theirs = hf(input_ids=x["ids"], attention_mask=x["valid"].long(), decoder_input_ids=x["decoder_ids"])
        unmasked = hf(input_ids=x["ids"], decoder_input_ids=x["decoder_ids"])
        mine = ours(x["ids"], x["decoder_ids"])
    torch.testing.assert_close(mine.logits, theirs.logits, **TOL[torch.float32])
    assert max_error(unmasked.logits, theirs.logits) > 1e-2  # the padding does matter in this batch


def test_a_deeper_decoder_and_the_decoder_position_bias_are_used():
    """Depths 2 + 3 and the two bias tables are distinct tensors: swapping the tables changes the outputs."""
    hf = hf_t5_model(seed=7)
    ours = ours_from(hf)
    assert (ours.config.n_layers, ours.config.n_decoder) == (2, 3)
    swapped = T5ForConditionalGeneration(ours.config).eval()
    state = dict(ours.state_dict())
    enc, dec = "encoder.position_bias.embedding.weight", "decoder.position_bias.embedding.weight"
    state[enc], state[dec] = state[dec], state[enc]
    swapped.load_state_dict(state)
    x = batch(hf, seed=8)
    with torch.no_grad():
        right = ours(x["ids"], x["decoder_ids"], valid=x["valid"]).logits
        wrong = swapped(x["ids"], x["decoder_ids"], valid=x["valid"]).logits
        theirs = hf(input_ids=x["ids"], attention_mask=x["valid"].long(), decoder_input_ids=x["decoder_ids"]).logits
    torch.testing.assert_close(right, theirs, **TOL[torch.float32])
    assert max_error(wrong, theirs) > 1e-2


# ---- ours -> Hugging Face -----------------------------------------------------------------------------------


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("feed_forward", ["relu", "gated_gelu"])
def test_our_weights_run_in_hugging_face_and_round_trip_exactly(feed_forward, tied):
    config = T5Config(
        vocab_size=V,
        d_model=32,
        d_kv=6,
        d_ff=48,
        n_heads=4,
        n_layers=2,
        n_decoder_layers=3,
        num_buckets=8,
        max_distance=20,
        feed_forward=feed_forward,
        dropout=0.0,
        tie_word_embeddings=tied,
    )
    torch.manual_seed(9)
    ours = perturb_(T5ForConditionalGeneration(config), seed=9).eval()
    exported = hf_t5.state_dict_to_hf(ours.state_dict(), config)
    hf = transformers.T5ForConditionalGeneration(
        transformers.T5Config(**hf_t5.config_to_hf(config), attn_implementation="eager")
    ).eval()
    if not tied:  # see the module docstring: transformers >= 5 starts with lm_head = shared
        hf.lm_head.weight = torch.nn.Parameter(torch.empty_like(hf.lm_head.weight))
    hf.load_state_dict(exported, strict=True)
    assert set(exported) == set(hf.state_dict())
    x = batch(hf, seed=10)
    with torch.no_grad():
        theirs = hf(
            input_ids=x["ids"],
            attention_mask=x["valid"].long(),
            decoder_attention_mask=x["decoder_valid"].long(),
            labels=x["labels"],
            decoder_input_ids=x["decoder_ids"],
        )
        mine = ours(x["ids"], x["decoder_ids"], valid=x["valid"], decoder_valid=x["decoder_valid"], labels=x["labels"])
    torch.testing.assert_close(mine.logits, theirs.logits, **TOL[torch.float32])
    torch.testing.assert_close(mine.loss, theirs.loss, **TOL[torch.float32])
    # Both round trips reproduce every tensor exactly.
    state, result = hf_t5.state_dict_from_hf(exported, config)
    assert result == ([], []) and set(state) == set(ours.state_dict())
    assert all(torch.equal(state[k], v) for k, v in ours.state_dict().items())
    again = hf_t5.state_dict_to_hf(hf_t5.read_hf_model(hf)[1], config)
    assert set(again) == set(hf.state_dict())
    assert all(torch.equal(again[k], v) for k, v in hf.state_dict().items())


def test_saved_folders_load_on_both_sides(tmp_path):
    """HF save_pretrained -> read_pretrained; ours -> config.json + model.safetensors -> HF from_pretrained
    (which unties the head because the two matrices differ); pytorch_model.bin through weights_only."""
    hf = hf_t5_model(seed=11, feed_forward="gated-gelu", tied=False)
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    config, state = hf_t5.read_pretrained(tmp_path / "hf")
    ours = T5ForConditionalGeneration(config).eval()
    ours.load_state_dict(state)
    x = batch(hf, seed=12)
    with torch.no_grad():
        reference = hf(input_ids=x["ids"], attention_mask=x["valid"].long(), decoder_input_ids=x["decoder_ids"])
        torch.testing.assert_close(ours(x["ids"], x["decoder_ids"], valid=x["valid"]).logits, reference.logits)

    folder = tmp_path / "ours"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(hf_t5.config_to_hf(config)))
    exported = hf_t5.state_dict_to_hf(ours.state_dict(), config)
    safetensors_torch.save_file(exported, folder / "model.safetensors")
    loaded = transformers.T5ForConditionalGeneration.from_pretrained(folder, attn_implementation="eager").eval()
    assert loaded.lm_head.weight is not loaded.shared.weight and not loaded.config.scale_decoder_outputs
    with torch.no_grad():
        again = loaded(input_ids=x["ids"], attention_mask=x["valid"].long(), decoder_input_ids=x["decoder_ids"])
    torch.testing.assert_close(again.logits, reference.logits)

    (folder / "model.safetensors").unlink()
    torch.save(exported, folder / "pytorch_model.bin")
    assert hf_t5.read_pretrained(folder)[0] == config
    assert all(torch.equal(hf_t5.read_pretrained(folder)[1][k], v) for k, v in state.items())


# ---- decoding -----------------------------------------------------------------------------------------------


def _up_to_eos(row: list[int], eos: int) -> list[int]:
    """A generated row up to and including its first EOS (all of it when it has none)."""
    return row[: row.index(eos) + 1] if eos in row else row


def _eos_that_ends_one_row(hf, ids, valid, steps: int) -> int:
    """A token that the greedy decoder of row 0 emits mid-way and the other rows do not emit before it: as EOS it
    ends row 0 early and leaves the others running, so padding after EOS is exercised."""
    with torch.no_grad():
        free = hf.generate(
            ids,
            attention_mask=valid.long(),
            do_sample=False,
            num_beams=1,
            max_new_tokens=steps,
            eos_token_id=None,
            use_cache=False,
        ).tolist()
    for t in range(2, steps):
        token = free[0][t]
        if token not in free[0][1:t] and all(token not in row[1 : t + 1] for row in free[1:]):
            return token
    raise AssertionError("no token ends row 0 alone; change the seed")


def test_greedy_generation_equals_hugging_face_generate_with_padding():
    hf = hf_t5_model(seed=13, feed_forward="gated-gelu", tied=False)
    ours = ours_from(hf)
    x = batch(hf, seed=14)
    steps = 12
    eos = _eos_that_ends_one_row(hf, x["ids"], x["valid"], steps)
    with torch.no_grad():
        theirs = hf.generate(
            x["ids"],
            attention_mask=x["valid"].long(),
            do_sample=False,
            num_beams=1,
            max_new_tokens=steps,
            eos_token_id=eos,
            pad_token_id=PAD,
            use_cache=False,  # see the module docstring
        )
    mine = ours.generate(x["ids"], valid=x["valid"], max_new_tokens=steps, eos_id=eos)
    assert mine.tolist() == theirs.tolist()
    assert mine.shape == (B, 1 + steps) and (mine[:, 0] == START).all()
    assert eos in mine[0].tolist() and mine[0, -1] == PAD  # row 0 ended early and was padded
    # and the encoder's padding matters to what is generated
    assert (
        ours.generate(x["ids"], valid=torch.ones_like(x["valid"]), max_new_tokens=steps, eos_id=eos).tolist()
        != mine.tolist()
    )


@pytest.mark.parametrize(("seed", "feed_forward"), [(20, "gated-gelu"), (26, "relu")])
def test_beam_search_equals_hugging_face_never_early_stopping(seed, feed_forward):
    """Hypotheses and stopping rule as HF's early_stopping="never" (see the module docstring). After a row's EOS
    ours holds PAD; HF's beam search holds EOS there (in transformers 5.25, ``output_fill_value = pad_token_id or
    eos_token_id[0]`` falls through to EOS when the pad id is 0), so rows are compared up to their first EOS."""
    hf = hf_t5_model(seed=seed, feed_forward=feed_forward, tied=False)
    ours = ours_from(hf)
    x = batch(hf, seed=seed + 1)
    steps = 10
    eos = _eos_that_ends_one_row(hf, x["ids"], x["valid"], steps)
    beams = dict(do_sample=False, num_beams=3, length_penalty=1.0, max_new_tokens=steps, eos_token_id=eos)
    with torch.no_grad():
        theirs, stopped_early, greedy = (
            hf.generate(x["ids"], attention_mask=x["valid"].long(), **options, pad_token_id=PAD, use_cache=False)
            for options in (
                {**beams, "early_stopping": "never"},
                {**beams, "early_stopping": True},
                {**beams, "num_beams": 1},
            )
        )
    mine = ours.generate(x["ids"], valid=x["valid"], max_new_tokens=steps, beam_size=3, length_penalty=1.0, eos_id=eos)
    assert mine.shape == theirs.shape
    assert [_up_to_eos(r, eos) for r in mine.tolist()] == [_up_to_eos(r, eos) for r in theirs.tolist()]
    for row in mine.tolist():  # ours: PAD after EOS
        assert set(row[len(_up_to_eos(row, eos)) :]) <= {PAD}
    assert any(eos in row for row in mine.tolist())  # some hypothesis finished ...
    assert mine.tolist() != greedy.tolist()  # ... beam search found something greedy did not ...
    strip = [[_up_to_eos(r, eos) for r in out.tolist()] for out in (stopped_early, theirs)]
    assert strip[0] != strip[1]  # ... and early_stopping=True (another rule) answers differently on this batch


# ---- sizes, configs, keys -----------------------------------------------------------------------------------


def test_t5_small_preset_has_hugging_face_t5_small_parameter_count():
    """T5Config.small() against HF's T5ForConditionalGeneration with t5-small's sizes, both on the meta device
    (no memory, no init): the same parameter count (shared matrix counted once) and the same tensor shapes."""
    sizes = dict(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8)
    with torch.device("meta"):
        hf = transformers.T5ForConditionalGeneration(transformers.T5Config(**sizes, feed_forward_proj="relu"))
        ours = T5ForConditionalGeneration(T5Config.small())
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in hf.parameters()) == 60_506_624
    pairs = dict(hf_t5.key_pairs(ours.config))
    theirs = hf.state_dict()
    assert {ours_key: tuple(theirs[hf_key].shape) for hf_key, ours_key in pairs.items()} == {
        k: tuple(v.shape) for k, v in ours.state_dict().items()
    }
    assert hf_t5.config_from_hf(hf.config.to_dict()) == dataclasses.replace(T5Config.small(), dropout=0.1)


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("feed_forward", FEED_FORWARDS)
def test_key_pairs_cover_every_tensor_once(feed_forward, tied):
    hf = hf_t5_model(seed=17, feed_forward=feed_forward, tied=tied)
    config, _ = hf_t5.read_hf_model(hf)
    pairs = hf_t5.key_pairs(config)
    theirs, ours = [p[0] for p in pairs], [p[1] for p in pairs]
    assert len(set(theirs)) == len(theirs) and len(set(ours)) == len(ours)
    assert set(ours) == set(T5ForConditionalGeneration(config).state_dict())
    aliases = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"} | ({"lm_head.weight"} if tied else set())
    assert set(theirs) | aliases == set(hf.state_dict()) and not set(theirs) & aliases
    # a bare T5Model: no head on either side
    bare = hf_t5_model(seed=17, feed_forward=feed_forward, tied=tied, cls=transformers.T5Model)
    state, result = hf_t5.state_dict_from_hf(bare.state_dict(), config, lm_head=False)
    assert hf_t5.read_hf_model(bare, lm_head=False)[0] == config
    assert result == ([], []) and set(state) == set(T5Model(config).state_dict())


def test_config_round_trips():
    for config in (
        T5Config.small(),
        T5Config.small(tie_word_embeddings=False, feed_forward="gated_gelu", n_decoder_layers=4, dropout=0.0),
        T5Config.small(vocab_size=100, pad_id=3, eos_id=2, decoder_start_id=5, layer_norm_eps=1e-5),
    ):
        assert hf_t5.config_from_hf(hf_t5.config_to_hf(config)) == config
        hf_config = transformers.T5Config(**hf_t5.config_to_hf(config))
        assert hf_config.scale_decoder_outputs == config.tie_word_embeddings
        assert hf_t5.config_from_hf(hf_config.to_dict()) == config


def test_config_reads_both_spellings_of_the_untied_head():
    base = {k: v for k, v in HF_CONFIG.items() if k != "attn_implementation"}
    assert hf_t5.config_from_hf(base).tie_word_embeddings  # absent: original T5, tied
    assert not hf_t5.config_from_hf({**base, "tie_word_embeddings": False}).tie_word_embeddings  # transformers 4
    v5 = {**base, "tie_word_embeddings": True, "scale_decoder_outputs": False}  # what transformers 5 writes
    assert not hf_t5.config_from_hf(v5).tie_word_embeddings
    assert hf_t5.config_from_hf({**base, "eos_token_id": [EOS]}).eos_id == EOS
    assert hf_t5.config_from_hf({**base, "decoder_start_token_id": None, "pad_token_id": 4}).decoder_start_id == 4


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("feed_forward_proj", "gated-silu", r"feed_forward_proj='gated-silu'; supported: \['gated-gelu', 'relu'\]"),
        ("feed_forward_proj", "gelu", "feed_forward_proj='gelu'"),
        ("model_type", "mt5", "model_type='mt5'"),
        ("pad_token_id", None, "pad_token_id=null"),
        ("eos_token_id", [1, 2], r"eos_token_id=\[1, 2\]; our T5 takes a single id"),
    ],
)
def test_unsupported_configs_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        hf_t5.config_from_hf({**HF_CONFIG, field: value})


def test_config_errors_name_what_is_missing():
    with pytest.raises(ValueError, match=r"lacks the T5 field\(s\) \['d_kv'\]"):
        hf_t5.config_from_hf({k: v for k, v in HF_CONFIG.items() if k != "d_kv"})
    with pytest.raises(TypeError, match="mapping"):
        hf_t5.config_from_hf(transformers.T5Config(**HF_CONFIG))


def test_state_dict_errors_name_the_keys():
    hf = hf_t5_model(seed=19, feed_forward="gated-gelu")
    config, _ = hf_t5.read_hf_model(hf)
    state = dict(hf.state_dict())

    missing = {k: v for k, v in state.items() if k != "decoder.block.2.layer.2.DenseReluDense.wi_1.weight"}
    with pytest.raises(ValueError, match=r"missing keys \(1\).*decoder\.block\.2\.layer\.2\.DenseReluDense\.wi_1"):
        hf_t5.state_dict_from_hf(missing, config)
    extra = {**state, "encoder.block.9.layer.0.layer_norm.weight": torch.ones(32)}
    with pytest.raises(ValueError, match=r"unexpected keys \(1\).*encoder\.block\.9\.layer\.0\.layer_norm"):
        hf_t5.state_dict_from_hf(extra, config)
    assert hf_t5.state_dict_from_hf(extra, config, strict=False)[1].unexpected == [
        "encoder.block.9.layer.0.layer_norm.weight"
    ]
    with pytest.raises(
        ValueError, match=r"missing keys \(5\): \['encoder\.block\.0\.layer\.1\.DenseReluDense\.wi\.weight"
    ):
        hf_t5.state_dict_from_hf(state, dataclasses.replace(config, feed_forward="relu"), strict=False)

    for alias in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
        with pytest.raises(ValueError, match=f"{alias} differs from shared.weight"):
            hf_t5.state_dict_from_hf({**state, alias: state[alias] + 1.0}, config)
    with pytest.raises(ValueError, match="lm_head.weight differs from shared.weight.*tie_word_embeddings=False"):
        hf_t5.state_dict_from_hf({**state, "lm_head.weight": state["lm_head.weight"] + 1.0}, config)
    with pytest.raises(ValueError, match=r"relative_attention_bias\.weight \(8, 4\) -> .*\(16, 4\)"):
        hf_t5.state_dict_from_hf(state, dataclasses.replace(config, num_buckets=16))
    unused = "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"  # in old checkpoints
    assert hf_t5.state_dict_from_hf({**state, unused: torch.zeros(8, 4)}, config)[1] == ([], [])

    ours_state = hf_t5.read_hf_model(hf)[1]
    with pytest.raises(ValueError, match=r"not part of our T5ForConditionalGeneration.*\['lm_head\.weight'\]"):
        hf_t5.state_dict_to_hf({**ours_state, "lm_head.weight": state["shared.weight"]}, config)
    with pytest.raises(ValueError, match=r"lacks these keys.*\['lm_head\.weight'\]"):
        hf_t5.state_dict_to_hf(ours_state, dataclasses.replace(config, tie_word_embeddings=False))
    with pytest.raises(TypeError, match="config must be a T5Config"):
        hf_t5.state_dict_from_hf(state, transformers.T5Config(**HF_CONFIG))


def test_read_pretrained_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        hf_t5.read_pretrained(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text(json.dumps({**HF_CONFIG, "feed_forward_proj": "gated-silu"}))
    with pytest.raises(ValueError, match="gated-silu"):  # refused before any weights are looked for
        hf_t5.read_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(HF_CONFIG))
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        hf_t5.read_pretrained(tmp_path)
    torch.save({"weights": torch.nn.Linear(2, 2)}, tmp_path / "pytorch_model.bin")  # a module: not plain tensors
    with pytest.raises(ValueError, match="refused"):
        hf_t5.read_pretrained(tmp_path)


# ---- the model classes' entry points ------------------------------------------------------------------------


def test_from_hf_keeps_the_dtype_and_from_pretrained_reads_both_classes(tmp_path):
    hf = hf_t5_model(seed=21, feed_forward="gated-gelu", tied=False)
    x = batch(hf, seed=22)
    run = dict(valid=x["valid"])
    with torch.no_grad():
        reference = hf(input_ids=x["ids"], attention_mask=x["valid"].long(), decoder_input_ids=x["decoder_ids"])
    ours = T5ForConditionalGeneration.from_hf(hf)
    assert not ours.training and ours.shared.weight.dtype == torch.float32
    ours64 = T5ForConditionalGeneration.from_hf(hf.to(torch.float64))
    assert ours64.shared.weight.dtype == torch.float64
    assert torch.equal(ours64.lm_head.weight, hf.lm_head.weight)  # loaded in float64, not through float32
    hf.to(torch.float32)
    hf.save_pretrained(tmp_path, safe_serialization=True)
    loaded = T5ForConditionalGeneration.from_pretrained(tmp_path)
    body = T5Model.from_pretrained(tmp_path)  # a T5Model drops the checkpoint's LM head
    hf_body = transformers.T5Model(hf.config)
    hf_body.load_state_dict({k: v for k, v in hf.state_dict().items() if k != "lm_head.weight"})
    bare = T5Model.from_hf(hf_body)  # an HF T5Model: no head on either side
    assert not hasattr(body, "lm_head") and not loaded.training
    with torch.no_grad():
        logits = ours(x["ids"], x["decoder_ids"], **run).logits
        torch.testing.assert_close(logits, reference.logits, **TOL[torch.float32])
        assert torch.equal(loaded(x["ids"], x["decoder_ids"], **run).logits, logits)
        states = loaded(x["ids"], x["decoder_ids"], **run).last_hidden_state
        assert torch.equal(body(x["ids"], x["decoder_ids"], **run).last_hidden_state, states)
        assert torch.equal(bare(x["ids"], x["decoder_ids"], **run).last_hidden_state, states)
    assert T5Model.from_pretrained(tmp_path, dtype=torch.float64).shared.weight.dtype == torch.float64
