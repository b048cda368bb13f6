"""Text preprocessing: character classes, each normalization step, the pipeline, stop words.

The fast pipeline (str.translate tables, ASCII fast paths, one regex) is checked against a
character-by-character reference written here from BERT's definitions, on hypothesis-drawn text.
"""

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transformer_from_scratch.tokenizers.normalization import (
    ENGLISH_STOP_WORDS,
    Normalizer,
    clean_text,
    is_cjk,
    is_control,
    is_punctuation,
    is_whitespace,
    lowercase,
    normalize_unicode,
    pad_cjk,
    remove_stop_words,
    split_punctuation,
    strip_accents,
)

# Characters that exercise every branch: controls, odd whitespace, accents, CJK, punctuation, sigma.
TRICKY_CHARS = list(
    "aZé É\u0301Σσς中日本\u3000\u00a0\u2028\t\n\r\x00\x07\x0b\x1c\x7f\u200b\u200d\u00ad\ufeff\ufffd\ue000"
    "!?,.-'\"$^`|~€©¿—…«»ﬁ①İßẞ😀\U00020000\U0002b830"
)
texts = st.text(st.one_of(st.sampled_from(TRICKY_CHARS), st.characters(exclude_categories=["Cs"])), max_size=40)
ascii_texts = st.text(st.characters(min_codepoint=0, max_codepoint=127), max_size=40)
configs = st.builds(
    Normalizer,
    form=st.sampled_from([None, "NFC", "NFKC", "NFD", "NFKD"]),
    clean=st.booleans(),
    split_cjk=st.booleans(),
    lowercase=st.booleans(),
    strip_accents=st.sampled_from([None, True, False]),
    split_punctuation=st.booleans(),
)


# --- a reference written for the eye: BERT's rules, one character at a time ----------------------


def ref_is_punct(ch):
    cp = ord(ch)
    ascii_symbol = 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126
    return ascii_symbol or unicodedata.category(ch).startswith("P")


def ref_is_cjk(ch):
    cp = ord(ch)
    blocks = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F)]
    blocks += [(0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]
    return any(lo <= cp <= hi for lo, hi in blocks)


def ref_normalize(text, lower=True, strip=True):
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "\t\n\r" or cat == "Zs":
            out.append(" ")
        elif ch == "\x00" or ch == "\ufffd" or cat.startswith("C"):
            continue
        elif ref_is_cjk(ch):
            out.append(" " + ch + " ")
        else:
            out.append(ch)
    text = "".join(out)
    if lower:
        text = "".join(ch.lower() for ch in text)
    if strip:
        text = "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")
    return text


def ref_split(text):
    words = []
    for chunk in text.split():
        current = ""
        for ch in chunk:
            if ref_is_punct(ch):
                if current:
                    words.append(current)
                words.append(ch)
                current = ""
            else:
                current += ch
        if current:
            words.append(current)
    return words


# --- character classes ------------------------------------------------------------------------------


@pytest.mark.parametrize("ch", ["\x00", "\x07", "\x0b", "\x1b", "\x7f", "\x85", "\u200b", "\u200d", "\u00ad", "\ue000"])
def test_controls_formats_and_private_use_are_control(ch):
    assert is_control(ch)


@pytest.mark.parametrize("ch", ["\t", "\n", "\r", " ", "a", "é", "中", "😀"])
def test_tab_newline_and_text_are_not_control(ch):
    assert not is_control(ch)


@pytest.mark.parametrize(("ch", "expected"), [(" ", True), ("\t", True), ("\u3000", True), ("\u00a0", True)])
def test_whitespace(ch, expected):
    assert is_whitespace(ch) is expected


@pytest.mark.parametrize("ch", ["\u200b", "\x0b", "a", "\u2028"])
def test_not_bert_whitespace(ch):
    # zero-width space and vertical tab are control (deleted); U+2028 is Zl, not Zs
    assert not is_whitespace(ch)


@pytest.mark.parametrize("ch", list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + ["¿", "—", "…", "«", "、", "。"])
def test_punctuation(ch):
    assert is_punctuation(ch)


@pytest.mark.parametrize("ch", ["a", "0", " ", "€", "©", "°", "😀", "中", "\u0301"])
def test_not_punctuation(ch):
    # non-ASCII symbols (Sc, So) stay inside their word
    assert not is_punctuation(ch)


def test_cjk_ranges():
    assert is_cjk("中") and is_cjk("\u3400") and is_cjk("\U00020000") and is_cjk("\U0002b830") and is_cjk("豈")
    assert not is_cjk("の") and not is_cjk("テ") and not is_cjk("한") and not is_cjk("a")


# --- each step --------------------------------------------------------------------------------------


def test_unicode_forms():
    assert normalize_unicode("e\u0301", "NFC") == "é"
    assert normalize_unicode("é", "NFD") == "e\u0301"
    assert normalize_unicode("ﬁ①Ａ", "NFKC") == "fi1A"
    assert normalize_unicode("ﬁ", "NFC") == "ﬁ"  # compatibility folding only in the K forms
    assert normalize_unicode("ﬁ", None) == "ﬁ"
    with pytest.raises(ValueError, match="form must be one of"):
        normalize_unicode("x", "NFX")


def test_clean_text():
    assert clean_text("a\x00b\ufffdc\u200bd") == "abcd"
    assert clean_text("a\tb\nc\r\nd\u3000e") == "a b c  d e"
    assert clean_text("x\x0by\x1cz\x7f") == "xyz"


def test_pad_cjk_isolates_ideographs_only():
    assert pad_cjk("中文English混合") == " 中  文 English 混  合 "
    assert pad_cjk("テキスト") == "テキスト"


def test_lowercase_per_character_has_no_final_sigma():
    assert lowercase("ΟΔΟΣ") == "οδοσ"  # str.lower() would give "οδος"
    assert lowercase("HeLLo ẞ") == "hello ß"


def test_strip_accents():
    assert strip_accents("Crème brûlée, naïve Ångström") == "Creme brulee, naive Angstrom"
    assert strip_accents("e\u0301") == "e"
    assert strip_accents("ß") == "ß"  # no decomposition: not an accent


def test_split_punctuation():
    assert split_punctuation("don't stop!!") == ["don", "'", "t", "stop", "!", "!"]
    assert split_punctuation("e.g. (x+y)") == ["e", ".", "g", ".", "(", "x", "+", "y", ")"]
    assert split_punctuation("5€ ¿qué?") == ["5€", "¿", "qué", "?"]


def test_bert_pipeline_example():
    norm = Normalizer.bert()
    assert norm.pre_tokenize("Héllo,\tWORLD!! 中文 a\u200bb") == ["hello", ",", "world", "!", "!", "中", "文", "ab"]
    cased = Normalizer.bert(lowercase=False)
    assert cased.pre_tokenize("Héllo WORLD") == ["Héllo", "WORLD"]  # cased BERT keeps accents too
    assert Normalizer(lowercase=False, strip_accents=True).normalize("Héllo") == "Hello"
    assert Normalizer(lowercase=True, strip_accents=False).normalize("Héllo") == "héllo"


def test_identity_normalizer_only_splits_on_whitespace():
    assert Normalizer.identity().pre_tokenize("Héllo, WORLD!") == ["Héllo,", "WORLD!"]
    assert Normalizer.identity().normalize("A\x00b") == "A\x00b"


def test_normalizer_validation_and_round_trip():
    with pytest.raises(ValueError, match="form must be one of"):
        Normalizer(form="nfc")
    with pytest.raises(TypeError, match="lowercase must be a bool"):
        Normalizer(lowercase="yes")
    with pytest.raises(ValueError, match="unknown normalizer option"):
        Normalizer.from_dict({"lower": True})
    norm = Normalizer(form="NFKC", lowercase=False, strip_accents=True, split_cjk=False)
    assert Normalizer.from_dict(norm.to_dict()) == norm


# --- properties -------------------------------------------------------------------------------------


@given(text=texts)
def test_fast_pipeline_equals_character_reference(text):
    norm = Normalizer.bert()
    assert norm.normalize(text) == ref_normalize(text)
    assert norm.pre_tokenize(text) == ref_split(ref_normalize(text))


@given(text=ascii_texts)
def test_ascii_fast_path_equals_character_reference(text):
    for lower in (True, False):
        norm = Normalizer.bert(lowercase=lower)
        assert norm.normalize(text) == ref_normalize(text, lower=lower, strip=lower)
        assert norm.pre_tokenize(text) == ref_split(ref_normalize(text, lower=lower, strip=lower))


@given(text=texts, norm=configs)
def test_normalization_is_idempotent(text, norm):
    once = norm.pre_tokenize(text)
    assert norm.pre_tokenize(" ".join(once)) == once  # the words are a fixed point
    if not norm.split_cjk:  # CJK padding adds spaces each time; everything else is a fixed point as a string
        assert norm.normalize(norm.normalize(text)) == norm.normalize(text)


@given(text=texts, norm=configs)
def test_coarse_split_commutes_with_pre_tokenize(text, norm):
    assert [w for chunk in norm.coarse_split(text) for w in norm.pre_tokenize(chunk)] == norm.pre_tokenize(text)


# --- stop words -------------------------------------------------------------------------------------


def test_remove_stop_words():
    tokens = Normalizer.bert().pre_tokenize("The cat is NOT on the mat, and it was never there!")
    assert remove_stop_words(tokens) == ["cat", "not", "mat", ",", "never", "!"]
    # negations are deliberately kept; matching ignores case
    assert {"not", "no", "never"}.isdisjoint(ENGLISH_STOP_WORDS)
    assert remove_stop_words(["The", "THE", "Cat"]) == ["Cat"]
    assert remove_stop_words(["cat", "dog", "the"], stop_words=["Cat"]) == ["dog", "the"]
    with pytest.raises(TypeError, match="list of strings"):
        remove_stop_words("the cat")
