"""The encoder–decoder recipe of chapter 04 (recipes/seq2seq.py): the teacher-forced loss, decoding of sources,
exact match, a whole run.

* ``seq2seq_loss`` is recomputed by hand with ``F.cross_entropy`` over the real target positions (float64);
* ``decode`` and ``evaluate_exact_match`` are driven by ``ScriptedSeq2Seq``, a hand-made module with the
  ``encode`` / ``decode`` API whose next token is a rule of the source (reverse it, copy it, …), so the
  expected outputs are known exactly;
* ``train_seq2seq`` runs a tiny model on the copy task (a few seconds) and must learn something
  measurable; resuming from a mid-run checkpoint must reproduce the uninterrupted run bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from transformer_from_scratch.config import TransformerConfig
from transformer_from_scratch.datasets import Seq2SeqBatch, synthetic
from transformer_from_scratch.models import EncoderDecoder
from transformer_from_scratch.recipes.runs import Run
from transformer_from_scratch.recipes.seq2seq import (
    decode,
    evaluate_exact_match,
    seq2seq_data,
    seq2seq_loss,
    seq2seq_model_config,
    seq2seq_train_config,
    train_seq2seq,
)
from transformer_from_scratch.training import list_checkpoints

VOCAB = synthetic.SymbolVocab()  # 0 <pad>, 1 <bos>, 2 <eos>, 3.. letters
PAD, BOS, EOS = VOCAB.pad_id, VOCAB.bos_id, VOCAB.eos_id
F64 = dict(rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------- the loss


def _random_model(seed: int = 0) -> EncoderDecoder:
    torch.manual_seed(seed)
    config = TransformerConfig.tiny(src_vocab_size=len(VOCAB), tgt_vocab_size=len(VOCAB), pad_id=PAD, max_len=16)
    return EncoderDecoder(config).double()


def _padded_batch() -> Seq2SeqBatch:
    """Five reversal pairs of lengths 2–9: padded on both sides, and T = S + 1 ≠ S."""
    batch = synthetic.to_batch(synthetic.make_task("reverse", 5, min_len=2, max_len=9, seed=3))
    assert not bool(batch.tgt_valid.all()) and not bool(batch.src_valid.all()), "the case needs padding"
    return batch


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_seq2seq_loss_is_cross_entropy_over_the_real_target_positions(label_smoothing):
    model = _random_model()
    batch = _padded_batch()
    with torch.no_grad():
        loss, metrics = seq2seq_loss(model, batch, label_smoothing=label_smoothing)
        logits = model(batch.src, batch.tgt_in, src_valid=batch.src_valid, tgt_valid=batch.tgt_valid).logits  # (B,T,V)
    real = batch.tgt_valid  # (B, T): the target positions that exist
    assert torch.equal(real, batch.tgt_out != -100)
    by_hand = F.cross_entropy(logits[real], batch.tgt_out[real], label_smoothing=label_smoothing)  # (N, V), (N,)
    assert_close(loss, by_hand, **F64)

    correct = (logits.argmax(-1) == batch.tgt_out)[real]  # (N,)
    assert metrics["token_accuracy"] == pytest.approx(float(correct.double().mean()), abs=1e-15)

    # What a loss that scored the padding (as a prediction of <pad>) would give instead: clearly different.
    padded_targets = torch.where(real, batch.tgt_out, torch.full_like(batch.tgt_out, PAD))
    scoring_padding = F.cross_entropy(logits.flatten(0, 1), padded_targets.flatten(), label_smoothing=label_smoothing)
    assert abs(float(scoring_padding) - float(loss)) > 1e-3


def test_seq2seq_loss_gradient_reaches_both_stacks_and_ignores_padding_content():
    model = _random_model()
    batch = _padded_batch()
    loss, _ = seq2seq_loss(model, batch)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())

    # Whatever id sits in the padded part of tgt_in, the loss is the same (the masks hide it, -100 skips it).
    junk = dataclasses.replace(
        batch, tgt_in=torch.where(batch.tgt_valid, batch.tgt_in, torch.full_like(batch.tgt_in, 7))
    )
    with torch.no_grad():
        assert_close(seq2seq_loss(model, junk)[0], loss.detach(), **F64)


# ------------------------------------------------------------------------------- a scripted "model"

Rule = Callable[[list[int], int], int]


class ScriptedSeq2Seq(nn.Module):
    """An encoder–decoder whose next token is ``rule(source, t)``, with ``t`` the number of tokens generated so far.

    ``encode`` returns the one-hot source (B, S, V) as memory (zeros at padding); ``decode`` reads the source
    back from the memory, so every hypothesis must be paired with the memory of its own batch element.
    """

    def __init__(self, rule: Rule, vocab_size: int = len(VOCAB)):
        super().__init__()
        self.rule, self.vocab_size = rule, vocab_size
        self.anchor = nn.Parameter(torch.zeros(()))  # decode() asks for a parameter to find the device
        self.modes_seen: list[bool] = []

    def encode(self, src_ids, src_valid=None):
        valid = torch.ones_like(src_ids, dtype=torch.bool) if src_valid is None else src_valid
        return F.one_hot(src_ids, self.vocab_size).double() * valid[..., None]  # (B, S, V)

    def decode(self, tgt_ids, memory, src_valid=None, tgt_valid=None):
        self.modes_seen.append(self.training)
        n_hyp, t_len = tgt_ids.shape
        assert bool((tgt_ids[:, 0] == BOS).all()), "every hypothesis starts with <bos>"
        logits = torch.full((n_hyp, t_len, self.vocab_size), -10.0, dtype=torch.float64)
        for i in range(n_hyp):
            real = memory[i].sum(-1) > 0  # (S,) positions holding a real token
            source = memory[i][real].argmax(-1).tolist()
            for t in range(t_len):
                logits[i, t, self.rule(source, t)] = 10.0
        return logits


def reverse_rule(source: list[int], t: int) -> int:
    return source[len(source) - 1 - t] if t < len(source) else EOS


def copy_rule(source: list[int], t: int) -> int:
    return source[t] if t < len(source) else EOS


def never_ends_rule(source: list[int], t: int) -> int:
    return VOCAB.first_symbol_id  # "a" forever: no <eos>


def with_pad_rule(source: list[int], t: int) -> int:
    return [3, PAD, 4, EOS, 5, 6][min(t, 5)]  # a, <pad>, b, <eos>, then junk after the end


SOURCES = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12, 3, 4, 5, 6], [12]]  # different lengths: the batch is padded
DECODE_ARGS = dict(bos_id=BOS, eos_id=EOS, pad_id=PAD, max_new_tokens=10)


@pytest.mark.parametrize("beam_size", [1, 2, 4])
@pytest.mark.parametrize("batch_size", [1, 3, 256])
def test_decode_returns_the_tokens_between_bos_and_eos(beam_size, batch_size):
    model = ScriptedSeq2Seq(reverse_rule)
    out = decode(model, SOURCES, beam_size=beam_size, batch_size=batch_size, **DECODE_ARGS)
    assert out == [s[::-1] for s in SOURCES]  # no <bos>, no <eos>, no padding; rows matched to their sources


def test_greedy_and_beam_size_one_agree_and_the_mode_is_restored():
    model = ScriptedSeq2Seq(copy_rule)
    model.train()
    greedy_out = decode(model, SOURCES, **DECODE_ARGS)
    beam_out = decode(model, SOURCES, beam_size=1, **DECODE_ARGS)
    assert greedy_out == beam_out == SOURCES
    assert model.training and model.modes_seen and not any(model.modes_seen)  # decoded in eval mode, then restored
    model.eval()
    decode(model, SOURCES[:1], **DECODE_ARGS)
    assert not model.training


def test_decode_stops_at_the_first_eos_and_drops_padding():
    out = decode(ScriptedSeq2Seq(with_pad_rule), SOURCES[:2], **DECODE_ARGS)
    assert out == [[3, 4], [3, 4]]  # a <pad> b <eos> junk -> a b


def test_decode_without_eos_stops_at_max_new_tokens():
    out = decode(ScriptedSeq2Seq(never_ends_rule), SOURCES, bos_id=BOS, eos_id=EOS, pad_id=PAD, max_new_tokens=6)
    assert out == [[VOCAB.first_symbol_id] * 6] * len(SOURCES)


PAIRS = [([3, 4, 5], [5, 4, 3]), ([3, 4, 3], [3, 4, 3]), ([6, 7, 8, 9], [9, 8, 7, 6]), ([5, 5], [5, 5])]


@pytest.mark.parametrize("beam_size", [1, 3])
def test_evaluate_exact_match_scores_whole_sequences(beam_size):
    assert evaluate_exact_match(ScriptedSeq2Seq(reverse_rule), PAIRS, beam_size=beam_size) == 1.0
    # Copying gets the reversal right exactly for the palindromes: 2 of the 4 sources.
    assert evaluate_exact_match(ScriptedSeq2Seq(copy_rule), PAIRS, beam_size=beam_size) == 0.5
    # Outputs that run on past the target never match, even though they start with it.
    one_extra = ScriptedSeq2Seq(lambda s, t: s[len(s) - 1 - t] if t < len(s) else (3 if t == len(s) else EOS))
    assert evaluate_exact_match(one_extra, PAIRS, beam_size=beam_size) == 0.0


# ------------------------------------------------------------------------------------------ a whole run


def _tiny_model_config() -> TransformerConfig:
    return seq2seq_model_config(d_model=32, n_heads=2, d_ff=64, n_encoder_layers=1, n_decoder_layers=1)


@pytest.fixture(scope="module")
def copy_run() -> Run:
    return train_seq2seq(
        seq2seq_data("copy", n_train=2000, n_validation=100, n_test=10, seed=0),
        _tiny_model_config(),
        seq2seq_train_config(steps=300, warmup_steps=10, max_lr=3e-3, eval_every=150, batch_size=32, seed=0),
    )


def test_train_seq2seq_learns_the_copy_task(copy_run):
    history = copy_run.history
    assert [r["step"] for r in history] == list(range(1, 301))
    first = sum(r["train_loss"] for r in history[:10]) / 10
    last = sum(r["train_loss"] for r in history[-10:]) / 10
    assert last < first / 5, (first, last)  # measured: 3.7 -> 0.2
    evals = [r for r in history if "val_loss" in r]
    assert [r["step"] for r in evals] == [150, 300]
    final = evals[-1]
    assert final["val_token_accuracy"] > 0.6, final  # chance is about 1/10; measured 0.95
    assert final["val_loss"] < evals[0]["val_loss"]
    assert all(0.0 <= r["val_exact_match"] <= 1.0 for r in evals)


def test_the_logged_exact_match_is_greedy_decoding_of_the_validation_split(copy_run):
    final = copy_run.history[-1]  # the last step is an evaluation step; the weights have not moved since
    recomputed = evaluate_exact_match(copy_run.model, copy_run.data.splits.validation, vocab=copy_run.data.vocab)
    assert final["val_exact_match"] == recomputed
    assert recomputed > 0.0  # it learned whole strings, not only tokens (measured 0.69)


def test_the_run_returns_its_data_model_trainer_and_report(copy_run):
    expected = synthetic.make_splits("copy", n_train=2000, n_validation=100, n_test=10, seed=0)
    assert copy_run.data.splits == expected and copy_run.data.task == "copy"
    assert copy_run.data.vocab == synthetic.SymbolVocab(10) and copy_run.tokenizer is copy_run.data.vocab
    assert copy_run.model is copy_run.trainer.model and copy_run.trainer.step == 300
    assert copy_run.model.config == _tiny_model_config()
    assert copy_run.folder is None  # no out_dir: nothing written
    report = copy_run.report  # the test split, decoded greedily once
    assert (report.test_pairs, report.beam_size, report.steps) == (10, 1, 300)
    assert report.exact_match == evaluate_exact_match(copy_run.model, expected.test, vocab=copy_run.data.vocab)
    (source, target), vocab = expected.test[0], copy_run.data.vocab
    assert (report.example_source, report.example_target) == (vocab.decode(source), vocab.decode(target))
    assert report.n_parameters == sum(p.numel() for p in copy_run.model.parameters())


def test_resume_from_a_checkpoint_continues_the_same_run(tmp_path):

    data = seq2seq_data("reverse", n_train=500, n_validation=20, n_test=4, seed=3)

    def run(out_dir, resume=None):
        config = seq2seq_train_config(
            steps=40,
            warmup_steps=5,
            eval_every=10,
            batch_size=16,
            seed=3,
            out_dir=str(out_dir),
            checkpoint_every=20,
            keep_checkpoints=2,
        )
        return train_seq2seq(data, _tiny_model_config(), config, resume=resume)

    full = run(tmp_path / "full")
    assert full.folder == tmp_path / "full"
    written = [json.loads(line) for line in (full.folder / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in written] == list(range(1, 41)) and written[-1]["train_loss"] == full.history[-1][
        "train_loss"
    ]
    assert json.loads((full.folder / "model_config.json").read_text())["d_model"] == 32
    halfway = [p for p in list_checkpoints(tmp_path / "full") if p.name.endswith("20")]
    assert len(halfway) == 1
    resumed = run(tmp_path / "resumed", resume=str(halfway[0]))

    def deterministic(history):
        return [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in history]

    assert deterministic(resumed.history) == deterministic(full.history)
    for (name, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert resumed.history[25]["train_loss"] != full.history[5]["train_loss"]  # the comparison is not vacuous


def test_recipe_defaults_are_the_measured_ones():
    model = seq2seq_model_config()
    assert (model.d_model, model.n_heads, model.d_ff, model.n_encoder_layers, model.n_decoder_layers) == (
        64,
        4,
        256,
        2,
        2,
    )
    assert not model.norm_first and model.tie_embeddings and model.tie_output and model.dropout == 0.0
    assert model.src_vocab_size == model.tgt_vocab_size == 13 and model.pad_id == PAD and model.max_len == 14
    assert model.impl == "plain" and seq2seq_model_config(impl="torch").impl == "torch"
    train = seq2seq_train_config()
    assert (train.steps, train.max_lr, train.warmup_steps, train.schedule) == (600, 2e-3, 100, "cosine")
    assert (train.batch_size, train.min_lr, train.weight_decay, train.eval_every) == (64, 1e-4, 0.0, 100)
    assert seq2seq_train_config(steps=7, warmup_steps=1).steps == 7  # overrides go through dataclasses.replace


def test_unknown_task_is_rejected_by_name():
    with pytest.raises(ValueError, match="rotate"):
        seq2seq_data("rotate", n_train=10, n_validation=2, n_test=2)
