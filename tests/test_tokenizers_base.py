"""The common tokenizer interface (tokenizers/base.py), exercised through the char and word tokenizers.

Laws: ids <-> tokens are inverse on the vocabulary; encode_batch rows equal per-text encode followed
by right padding, with ``allowed`` built by masks.key_padding; pairs are ``[CLS] a [SEP] b [SEP]``
with segments 0/1 and BERT's longest-first truncation; save/load changes nothing; the char tokenizer
is lossless on its alphabet.
"""

import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from transformer_from_scratch import masks
from transformer_from_scratch.tokenizers import (
    CharTokenizer,
    Normalizer,
    SpecialTokens,
    Tokenizer,
    WordPieceTokenizer,
    WordTokenizer,
    read_lines,
    tokenizer_types,
    vocab_by_frequency,
)

CORPUS = [
    "the cat sat on the mat",
    "The dog sat on the log!",
    "a cat and a dog",
    "Crème brûlée, naïve café",
]


@pytest.fixture
def char_tok():
    return CharTokenizer.train(CORPUS)


@pytest.fixture
def word_tok():
    return WordTokenizer.train(CORPUS)


# --- vocabularies by frequency ----------------------------------------------------------------------


def test_vocab_by_frequency_orders_by_count_then_token():
    counts = {"b": 2, "a": 2, "c": 5, "d": 1}
    assert vocab_by_frequency(counts, reserved=["[PAD]"]) == ["[PAD]", "c", "a", "b", "d"]
    assert vocab_by_frequency(counts, min_freq=2) == ["c", "a", "b"]
    assert vocab_by_frequency(counts, max_size=3, reserved=["[PAD]"]) == ["[PAD]", "c", "a"]
    assert vocab_by_frequency(dict(reversed(list(counts.items())))) == vocab_by_frequency(counts)
    with pytest.raises(ValueError, match="min_freq"):
        vocab_by_frequency(counts, min_freq=0)
    with pytest.raises(ValueError, match="max_size"):
        vocab_by_frequency(counts, max_size=1, reserved=["[PAD]", "[UNK]"])


def test_char_vocab(char_tok):
    # specials first in role order, then characters by count (space is the most frequent), ties by character
    assert char_tok.vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert char_tok.vocab[5] == " "
    counts = {}
    for text in CORPUS:
        for ch in text:
            counts[ch] = counts.get(ch, 0) + 1
    rest = char_tok.vocab[5:]
    assert rest == sorted(counts, key=lambda c: (-counts[c], c))
    assert CharTokenizer.train(CORPUS, min_freq=3).vocab[5:] == [c for c in rest if counts[c] >= 3]
    assert CharTokenizer.train(CORPUS, max_size=8).vocab_size == 8


def test_word_vocab_and_unknown_words(word_tok):
    # "the" 4 times; a, cat, dog, on, sat twice each (ties in alphabetical order); then words seen once
    assert word_tok.vocab[5:11] == ["the", "a", "cat", "dog", "on", "sat"]
    assert word_tok.encode("the zebra") == [word_tok.token_to_id("the"), word_tok.unk_id]
    assert word_tok.tokenize("The ZEBRA sat.") == ["the", "[UNK]", "sat", "[UNK]"]  # "." never seen
    assert WordTokenizer.train(CORPUS, min_freq=2).vocab[5:] == ["the", "a", "cat", "dog", "on", "sat"]


def test_word_tokenizer_stop_words():
    tok = WordTokenizer.train(CORPUS, stop_words=True)
    assert "the" not in tok and "on" not in tok and "cat" in tok
    assert tok.decode(tok.encode("The cat sat on the mat")) == "cat sat mat"


def test_word_decode_joins_words(word_tok):
    assert word_tok.decode(word_tok.encode("The cat  sat,on the mat")) == "the cat sat , on the mat"


# --- special tokens and look-ups ---------------------------------------------------------------------


def test_special_ids(char_tok):
    assert (char_tok.pad_id, char_tok.unk_id, char_tok.cls_id, char_tok.sep_id, char_tok.mask_id) == (0, 1, 2, 3, 4)
    assert char_tok.bos_id is None and char_tok.eos_id is None
    assert char_tok.special_tokens == {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    bare = CharTokenizer.train(CORPUS, special_tokens=None)
    assert bare.pad_id is None and bare.special_tokens == {}


def test_unknown_special_tokens_are_clear_errors(char_tok):
    with pytest.raises(ValueError, match=r"unknown special-token role\(s\) \['padding'\]"):
        SpecialTokens.from_dict({"padding": "[PAD]"})
    with pytest.raises(ValueError, match="unknown special-token role 'begin'"):
        char_tok.special_id("begin")
    with pytest.raises(ValueError, match=r"special token\(s\) \['\[MASK\]'\] are not in the vocabulary"):
        CharTokenizer(["[PAD]", "a"], {"pad": "[PAD]", "mask": "[MASK]"})
    with pytest.raises(ValueError, match="token '\\[FOO\\]' is not in the vocabulary"):
        char_tok.token_to_id("[FOO]")


def test_decode_rejects_ids_outside_the_vocabulary(char_tok):
    v = char_tok.vocab_size
    with pytest.raises(ValueError, match=f"token id {v} is outside the vocabulary of size {v}"):
        char_tok.decode([5, v])
    with pytest.raises(ValueError, match="token id -1 is outside"):
        char_tok.decode([-1])
    with pytest.raises(TypeError, match="integers"):
        char_tok.decode([1.0])
    with pytest.raises(ValueError, match="1-D"):
        char_tok.decode(torch.zeros(2, 2, dtype=torch.long))
    assert char_tok.decode(torch.tensor([7, 8])) == char_tok.decode([7, 8])


def test_no_unk_token_is_a_clear_error():
    tok = CharTokenizer.train(["ab"], special_tokens=None)
    with pytest.raises(ValueError, match="'z' is not in the vocabulary .* no unk token"):
        tok.encode("abz")


def test_literal_special_tokens_stay_whole(char_tok):
    assert char_tok.tokenize("a[MASK]b") == ["a", "[MASK]", "b"]
    assert char_tok.encode("[CLS]") == [char_tok.cls_id]
    plain = CharTokenizer(char_tok.vocab + ["[", "]", "K", "M", "A", "S"], parse_special_tokens=False)
    assert plain.tokenize("[MASK]") == list("[MASK]")


def test_char_tokenizer_decodes_specials_verbatim(char_tok):
    ids = char_tok.encode("a cat", add_special_tokens=True)
    assert ids[0] == char_tok.cls_id and ids[-1] == char_tok.sep_id
    assert char_tok.decode(ids) == "[CLS]a cat[SEP]"
    assert char_tok.decode(ids, skip_special_tokens=True) == "a cat"


@given(text=st.text(min_size=1, max_size=60))
def test_char_tokenizer_is_lossless_on_its_alphabet(text):
    tok = CharTokenizer.train([text])
    ids = tok.encode(text)
    assert tok.unk_id not in ids or "[UNK]" in text
    assert tok.decode(ids) == text


def test_char_tokenizer_with_normalizer_returns_normalized_text():
    tok = CharTokenizer.train(CORPUS, normalizer=Normalizer.bert())
    assert tok.decode(tok.encode("Crème\tCAT\u200b")) == "creme cat"  # tab -> space, zero-width deleted


def test_empty_corpus_is_an_error():
    for trainer in (CharTokenizer.train, WordTokenizer.train):
        with pytest.raises(ValueError, match="empty corpus"):
            trainer([])
        with pytest.raises(ValueError, match="empty corpus"):
            trainer(["", "   "] if trainer is WordTokenizer.train else [""])
        with pytest.raises(TypeError, match="iterable of strings"):
            trainer("just one string")


# --- pairs ------------------------------------------------------------------------------------------


def test_pair_template_and_segments(char_tok):
    enc = char_tok.encode_pair("ab", "cde")
    a, b = char_tok.encode("ab"), char_tok.encode("cde")
    assert enc.ids == [char_tok.cls_id, *a, char_tok.sep_id, *b, char_tok.sep_id]
    assert enc.segment_ids == [0, 0, 0, 0, 1, 1, 1, 1]


@given(la=st.integers(0, 12), lb=st.integers(0, 12), max_len=st.integers(3, 20))
def test_pair_truncation_is_longest_first(la, lb, max_len):
    tok = CharTokenizer.train(["abcdefghijklmnopqrstuvwxyz"])
    a, b = "abcdefghijkl"[:la], "mnopqrstuvwx"[:lb]
    enc = tok.encode_pair(a, b, max_len=max_len)
    budget = max_len - 3
    if la + lb <= budget:
        na, nb = la, lb
    elif min(la, lb) <= budget // 2:  # the shorter side fits in its half: keep it, cut the longer one
        na, nb = (la, budget - la) if la <= lb else (budget - lb, lb)
    else:  # both are cut to half; on an odd budget the first side keeps the extra token (ties cut b first)
        na, nb = math.ceil(budget / 2), budget // 2
    assert enc.ids == [tok.cls_id, *tok.encode(a[:na]), tok.sep_id, *tok.encode(b[:nb]), tok.sep_id]
    assert enc.segment_ids == [0] * (na + 2) + [1] * (nb + 1)
    assert len(enc.ids) <= max_len


def test_pair_errors(char_tok):
    with pytest.raises(ValueError, match="pair length 9 exceeds max_len=5"):
        char_tok.encode_pair("abc", "def", max_len=5, truncation=False)
    with pytest.raises(ValueError, match="too small"):
        char_tok.encode_pair("a", "b", max_len=2)
    no_cls = CharTokenizer.train(["ab"], special_tokens={"pad": "[PAD]", "unk": "[UNK]"})
    with pytest.raises(ValueError, match="pair encoding needs cls and sep"):
        no_cls.encode_pair("a", "b")


# --- batches ----------------------------------------------------------------------------------------

batch_texts = st.lists(st.text(alphabet="the cat sat on mat!", max_size=15), min_size=2, max_size=5)


@given(texts=batch_texts, specials=st.booleans())
def test_encode_batch_equals_per_text_encode_with_padding(texts, specials):
    tok = WordTokenizer.train(CORPUS)
    batch = tok.encode_batch(texts, add_special_tokens=specials)
    rows = [tok.encode(t, add_special_tokens=specials) for t in texts]
    width = max(len(r) for r in rows)
    assert batch.ids.tolist() == [r + [tok.pad_id] * (width - len(r)) for r in rows]
    assert batch.lengths.tolist() == [len(r) for r in rows]
    assert batch.valid.tolist() == [[j < len(r) for j in range(width)] for r in rows]
    assert batch.allowed.dtype == torch.bool and batch.allowed.shape == (len(texts), 1, 1, width)
    assert torch.equal(batch.allowed, masks.key_padding(batch.valid))
    assert batch.segment_ids.abs().sum() == 0


def test_encode_batch_pairs_max_length_and_truncation(char_tok):
    batch = char_tok.encode_batch(
        ["abcdef", "a"], text_pairs=["xy", "zz"], max_len=8, padding="max_length", truncation=True
    )
    first = char_tok.encode_pair("abcdef", "xy", max_len=8)
    second = char_tok.encode_pair("a", "zz")
    assert batch.ids[0].tolist() == first.ids
    assert len(second.ids) == 6  # [CLS] a [SEP] z z [SEP]
    assert batch.ids[1].tolist() == second.ids + [char_tok.pad_id] * 2
    assert batch.segment_ids[1].tolist() == second.segment_ids + [0, 0]
    assert batch.valid[1].tolist() == [True] * 6 + [False] * 2
    single = char_tok.encode_batch(["abcdefgh"], max_len=5, truncation=True, add_special_tokens=True)
    assert single.ids[0].tolist() == [char_tok.cls_id, *char_tok.encode("abc"), char_tok.sep_id]


def test_encode_batch_errors(char_tok):
    with pytest.raises(ValueError, match="sequence length 8 exceeds max_len=4"):
        char_tok.encode_batch(["abcdef"], max_len=4, add_special_tokens=True)
    with pytest.raises(ValueError, match="padding=False needs rows of equal length"):
        char_tok.encode_batch(["ab", "a"], padding=False)
    assert char_tok.encode_batch(["ab", "ba"], padding=False).ids.shape == (2, 2)
    with pytest.raises(ValueError, match="padding='max_length' needs max_len"):
        char_tok.encode_batch(["ab"], padding="max_length")
    with pytest.raises(ValueError, match="truncation=True needs max_len"):
        char_tok.encode_batch(["ab"], truncation=True)
    with pytest.raises(ValueError, match="padding must be"):
        char_tok.encode_batch(["ab"], padding="left")
    with pytest.raises(ValueError, match="texts is empty"):
        char_tok.encode_batch([])
    with pytest.raises(TypeError, match="sequence of strings"):
        char_tok.encode_batch("ab")
    with pytest.raises(ValueError, match="text_pairs has 1 entries but texts has 2"):
        char_tok.encode_batch(["a", "b"], text_pairs=["c"])
    no_pad = CharTokenizer.train(["ab"], special_tokens={"unk": "[UNK]"})
    with pytest.raises(ValueError, match="needs a pad special token"):
        no_pad.encode_batch(["ab", "a"])


# --- streaming --------------------------------------------------------------------------------------


def test_encode_file_streams_line_by_line(tmp_path, word_tok):
    path = tmp_path / "corpus.txt"
    good = "the cat\n\nsat on the mat\r\n" * 20_000  # 460 kB of text before a bad byte
    path.write_bytes(good.encode() + b"\xff\xfe broken\n")
    stream = word_tok.encode_file(path)
    assert next(stream) == word_tok.encode("the cat")  # blank line skipped
    assert next(stream) == word_tok.encode("sat on the mat")
    # Reading whole files would fail right away; a stream meets the bad byte only when it gets there.
    with pytest.raises(UnicodeDecodeError):
        for _ in stream:
            pass


def test_train_from_a_streamed_file_equals_train_from_a_list(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(CORPUS), encoding="utf-8")
    assert WordTokenizer.train(read_lines(path)).vocab == WordTokenizer.train(CORPUS).vocab
    assert CharTokenizer.train(read_lines(path)).vocab == CharTokenizer.train(CORPUS).vocab


# --- save / load ------------------------------------------------------------------------------------


def test_saved_file_is_plain_json(tmp_path, word_tok):
    path = tmp_path / "tok.json"
    word_tok.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["type"] == "word" and data["version"] == 1
    assert data["vocab"] == word_tok.vocab
    assert data["special_tokens"] == {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
    assert data["options"]["normalizer"]["lowercase"] is True


@given(text=st.text(max_size=30), kind=st.sampled_from(["char", "word"]))
def test_save_load_round_trip_gives_identical_encodings(tmp_path_factory, text, kind):
    corpus = [*CORPUS, text]
    tok = CharTokenizer.train(corpus) if kind == "char" else WordTokenizer.train(corpus, stop_words=True)
    path = tmp_path_factory.mktemp("tok") / "tok.json"
    tok.save(path)
    loaded = Tokenizer.load(path)
    assert type(loaded) is type(tok)
    assert loaded.vocab == tok.vocab and loaded.special_tokens == tok.special_tokens
    for probe in (text, *CORPUS, "unseen ZEBRA [MASK]"):
        assert loaded.encode(probe, add_special_tokens=True) == tok.encode(probe, add_special_tokens=True)
    assert loaded.decode(tok.encode(text)) == tok.decode(tok.encode(text))


def test_load_errors(tmp_path, char_tok):
    path = tmp_path / "tok.json"
    char_tok.save(path)
    with pytest.raises(ValueError, match="WordTokenizer.load got a saved tokenizer of type 'char'"):
        WordTokenizer.load(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    for change, message in [({"type": "sentencepiece"}, "unknown tokenizer type"), ({"version": 2}, "version 2")]:
        path.write_text(json.dumps({**data, **change}), encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            Tokenizer.load(path)
    path.write_text("not json", encoding="utf-8")
    with pytest.raises(ValueError, match="invalid JSON"):
        Tokenizer.load(path)


def test_registry_knows_every_tokenizer():
    types = tokenizer_types()
    assert (
        types["char"] is CharTokenizer and types["word"] is WordTokenizer and types["wordpiece"] is WordPieceTokenizer
    )
