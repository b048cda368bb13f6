"""The GPT language-model recipe (recipes/gpt.py): data split, baseline, evaluation windows, a short run.

The command line that drives it (``tfs train gpt``) is tested in test_cli.py."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from transformer_from_scratch.recipes import gpt
from transformer_from_scratch.recipes.runs import HISTORY_FILE, MODEL_CONFIG_FILE, TOKENIZER_FILE
from transformer_from_scratch.tokenizers import Tokenizer

# ---------------------------------------------------------------------------------------------------- data


def test_split_text_is_a_contiguous_90_10_cut():
    text = "".join(chr(ord("a") + i % 26) for i in range(1003))
    train, validation = gpt.split_text(text)
    assert len(train) == math.floor(0.9 * 1003) == 902
    assert train + validation == text  # nothing lost, nothing shuffled
    assert gpt.split_text("abcdefghij", 0.5) == ("abcde", "fghij")


def test_user_file_is_split_90_10(tmp_path):
    text = "The quick brown fox jumps over the lazy dog.\n" * 40
    path = tmp_path / "story.txt"
    path.write_text(text, encoding="utf-8")
    train, validation = gpt.lm_texts(path)
    assert (train, validation) == (text[:1620], text[1620:])  # 1800 characters, cut at 1620
    data = gpt.load_lm_data(path, tokenizer="char")
    assert data.tokenizer.decode(data.train) == train
    assert data.tokenizer.decode(data.validation) == validation
    assert data.train.dtype == torch.long and data.train.dim() == 1


def test_char_tokenizer_learns_from_the_train_text_only(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("aaaaaaaaab" * 9 + "zzzzzzzzzz", encoding="utf-8")  # "z" only in the last 10 %
    data = gpt.load_lm_data(path, tokenizer="char")
    tok = data.tokenizer
    assert "z" not in tok.tokenize("ab") and tok.vocab_size == 3  # <unk>, a, b
    assert bool((data.validation == tok.unk_id).all())  # validation-only characters are unknown


def test_bpe_tokenizer_is_cached_and_lossless(tmp_path):
    text = "the cat sat on the mat and the dog sat on the log. " * 30
    first = gpt.build_tokenizer("bpe", text, bpe_vocab_size=270, cache_dir=tmp_path)
    cached = list((tmp_path / "lm-tokenizers").glob("bpe-270-*.json"))
    assert len(cached) == 1
    second = gpt.build_tokenizer("bpe", text, bpe_vocab_size=270, cache_dir=tmp_path)
    assert second.merges == first.merges and second.vocab_size == 270
    cached[0].write_text("{not json")  # a damaged cache is rebuilt, not fatal
    third = gpt.build_tokenizer("bpe", text, bpe_vocab_size=270, cache_dir=tmp_path)
    assert third.merges == first.merges
    assert third.decode(third.encode("the dog sat")) == "the dog sat"


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda p: p / "missing.txt", FileNotFoundError, "does not exist"),
        (lambda p: p, ValueError, "is a folder"),
        (lambda p: (p / "blank.txt", (p / "blank.txt").write_text("  \n\n"))[0], ValueError, "is empty"),
        (lambda p: (p / "latin1.txt", (p / "latin1.txt").write_bytes(b"caf\xe9\n"))[0], ValueError, "not UTF-8"),
    ],
    ids=["missing", "folder", "blank", "not-utf8"],
)
def test_bad_data_paths_raise_clear_errors(tmp_path, make, error, words):
    path = make(tmp_path)
    with pytest.raises(error, match=words) as info:
        gpt.lm_texts(path)
    assert str(path) in str(info.value)


# ----------------------------------------------------------------------------------------- the baseline


def test_unigram_baseline_by_hand():
    # Train counts over V = 4: token 0 ×3, token 1 ×1, tokens 2 and 3 never. N = 4.
    train = torch.tensor([0, 0, 1, 0])
    p = gpt.unigram_distribution(train, 4)
    assert_close(p, torch.tensor([4 / 8, 2 / 8, 1 / 8, 1 / 8], dtype=torch.float64), rtol=1e-12, atol=0)
    targets = torch.tensor([0, 3, 1])  # -(log 1/2 + log 1/8 + log 1/4) / 3 = (1 + 3 + 2) ln 2 / 3 = 2 ln 2
    assert gpt.unigram_loss(train, targets, 4) == pytest.approx(2 * math.log(2), rel=1e-12)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        gpt.unigram_loss(train, torch.tensor([4]), 4)


# ----------------------------------------------------------------------------------- evaluation windows


def test_evaluation_windows_predict_every_token_once():
    tokens = torch.arange(1, 12)  # 11 tokens -> 10 targets; context 4 -> two full windows and one of 2
    windows = gpt.evaluation_windows(tokens, 4)
    (x, y), (x_tail, y_tail) = windows
    assert x.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]] and y.tolist() == [[2, 3, 4, 5], [6, 7, 8, 9]]
    assert x_tail.tolist() == [[9, 10]] and y_tail.tolist() == [[10, 11]]
    targets = torch.cat([y.reshape(-1), y_tail.reshape(-1)])
    assert targets.tolist() == tokens[1:].tolist()
    (x, y), (x_tail, y_tail) = gpt.evaluation_windows(tokens, 4, max_tokens=6)
    assert torch.cat([y.reshape(-1), y_tail.reshape(-1)]).tolist() == [2, 3, 4, 5, 6, 7]
    assert len(gpt.evaluation_windows(torch.arange(9), 4)) == 1  # 8 targets fill two windows exactly


class _Bigram(torch.nn.Module):
    """logits[b, t] = table[ids[b, t]]: a model whose loss is easy to compute independently."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.table = torch.nn.Parameter(torch.randn(vocab_size, vocab_size, generator=torch.Generator().manual_seed(0)))

    def forward(self, ids):
        return self.table[ids]  # (B, T) -> (B, T, V)


def test_evaluate_lm_equals_cross_entropy_over_all_transitions():
    model = _Bigram(7)
    tokens = torch.randint(0, 7, (103,), generator=torch.Generator().manual_seed(1))
    result = gpt.evaluate_lm(model, tokens, 10, batch_size=3)
    with torch.no_grad():
        expected = F.cross_entropy(model.table[tokens[:-1]], tokens[1:])  # a bigram sees only the last token
    assert result["val_loss"] == pytest.approx(float(expected), rel=1e-5)
    assert result["val_perplexity"] == pytest.approx(math.exp(float(expected)), rel=1e-5)
    assert result["val_tokens"] == 102
    assert model.training  # restored


# ------------------------------------------------------------------------------------------- a short run

TINY_MODEL = dict(n_layers=1, n_heads=2, d_model=32, context=16, dropout=0.0)
TINY_TRAIN = dict(
    batch_size=16,
    steps=40,
    max_lr=1e-2,
    min_lr=1e-3,
    warmup_steps=4,
    weight_decay=0.0,
    betas=(0.9, 0.99),
    grad_clip=1.0,
    eval_every=20,
    seed=0,
)


def train_tiny(text_file, **train_changes):
    """The recipe on a character-level tiny model: 40 steps of 16 windows of 16 characters, a 20-token sample."""
    data = gpt.load_lm_data(text_file, tokenizer="char")
    model_config = gpt.gpt_model_config(data.vocab_size, **TINY_MODEL)
    train_config = gpt.gpt_train_config(**{**TINY_TRAIN, **train_changes})
    return gpt.train_gpt(data, model_config, train_config, sample_tokens=20)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run faster on one thread on a shared CPU; the setting is restored for the other test files."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    """Predictable text: a few sentences in a fixed rotation, so 40 steps are enough to learn a lot."""
    sentences = ["the cat sat on the mat. ", "a dog ran to the log. ", "we met at ten. "]
    path = tmp_path_factory.mktemp("lm") / "corpus.txt"
    path.write_text("".join(sentences[(i * 7) % 3] for i in range(300)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_run(text_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return train_tiny(text_file, out_dir=str(out)), out


def test_a_few_steps_reduce_the_loss_below_the_unigram_baseline(tiny_run):
    run, _ = tiny_run
    losses = [r["train_loss"] for r in run.history]
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5
    report = run.report
    assert report.val_loss < report.unigram_loss - 0.5
    assert report.val_perplexity == pytest.approx(math.exp(report.val_loss))
    assert report.unigram_perplexity == pytest.approx(math.exp(report.unigram_loss))
    # The report's validation loss is evaluate_lm on the validation stream, and its baseline the unigram loss of
    # the same targets.
    again = gpt.evaluate_lm(run.model, run.data.validation, 16)
    assert again["val_loss"] == pytest.approx(report.val_loss, rel=1e-6)
    n = report.val_tokens
    assert report.unigram_loss == pytest.approx(
        gpt.unigram_loss(run.data.train, run.data.validation[1 : 1 + n], run.data.vocab_size)
    )
    # The file has no capital T, so the sample continues the first 4 training characters instead of "The ".
    assert report.prompt == "the " and report.sample.startswith("the ") and len(report.sample) == 4 + 20


def test_lm_loss_equals_the_models_own_shifted_loss(tiny_run):
    run, _ = tiny_run
    window = run.data.train[:17][None]  # (1, 17): inputs 0..15, next tokens 1..16
    x, y = window[:, :-1], window[:, 1:]
    model = run.model.eval()
    with torch.no_grad():
        ours = gpt.lm_loss(model, (x, y))
        inside = model(x, labels=x).loss  # the model shifts internally: predicts x[t + 1] at position t
        expected = F.cross_entropy(model(x).logits[0], y[0])
        assert_close(ours, expected)
        assert_close(inside, F.cross_entropy(model(x).logits[0, :-1], x[0, 1:]))


def test_history_json_lines_are_written_next_to_the_checkpoint(tiny_run):
    run, out = tiny_run
    assert run.folder == out
    lines = (out / HISTORY_FILE).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["step"] for r in records] == list(range(1, 41))
    for r in records:
        assert list(r)[:4] == ["step", "train_loss", "val_loss", "tokens_per_s"]
        assert r["tokens_per_s"] > 0 and math.isfinite(r["train_loss"])
    evaluated = [r["step"] for r in records if r["val_loss"] is not None]
    assert evaluated == [20, 40]
    assert records[-1]["val_loss"] == pytest.approx(run.report.val_loss)
    assert [p.name for p in out.iterdir() if p.name.startswith("step_")], "no checkpoint beside history.jsonl"
    assert Tokenizer.load(out / TOKENIZER_FILE).vocab_size == run.tokenizer.vocab_size
    assert json.loads((out / MODEL_CONFIG_FILE).read_text())["d_model"] == 32


def test_same_seed_same_run(text_file):
    short = {"steps": 5, "eval_every": 5, "warmup_steps": 1}
    a, b = train_tiny(text_file, **short), train_tiny(text_file, **short)
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    assert a.report.sample == b.report.sample
    c = train_tiny(text_file, **short, seed=1)
    assert [r["train_loss"] for r in c.history] != [r["train_loss"] for r in a.history]


# ------------------------------------------------------------------------------------------------ the configs


def test_the_recipe_defaults():
    model = gpt.gpt_model_config(65)
    assert (model.n_layers, model.n_heads, model.d_model, model.d_ff, model.max_len) == (4, 4, 128, 512, 64)
    assert (model.dropout, model.embedding_dropout, model.attention_dropout, model.impl) == (0.0, 0.0, 0.0, "plain")
    assert gpt.gpt_model_config(65, impl="kernels").impl == "kernels"  # any field can be overridden
    train = gpt.gpt_train_config()
    assert (train.steps, train.batch_size, train.max_lr, train.min_lr, train.warmup_steps) == (
        1000,
        32,
        2e-3,
        1e-4,
        100,
    )
    assert (train.weight_decay, train.betas, train.grad_clip, train.eval_every, train.seed) == (
        0.1,
        (0.9, 0.99),
        1.0,
        100,
        0,
    )


def test_bad_settings_and_data_that_do_not_fit_are_named(text_file):
    with pytest.raises(ValueError, match="warmup_steps"):
        gpt.gpt_train_config(steps=5, warmup_steps=5)
    data = gpt.load_lm_data(text_file, tokenizer="char")
    with pytest.raises(ValueError, match="vocab_size=7"):
        gpt.make_gpt_trainer(data, gpt.gpt_model_config(7, **TINY_MODEL), gpt.gpt_train_config())
    too_long = gpt.gpt_model_config(data.vocab_size, **{**TINY_MODEL, "context": data.train.numel()})
    with pytest.raises(ValueError, match="smaller context"):
        gpt.make_gpt_trainer(data, too_long, gpt.gpt_train_config())
