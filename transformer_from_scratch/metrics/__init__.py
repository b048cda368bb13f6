"""Evaluation metrics, written out in plain Python/torch/NumPy — one module per family, every name exported here.

Four families, each function a few lines a reader can check against its formula:

- **Sequences** — :func:`exact_match` of whole sequences and :func:`token_accuracy` of arg-max predictions.
- **Classification** — :func:`accuracy`, :func:`confusion_matrix` and :func:`precision_recall_f1` (with the
  shortcuts :func:`precision`, :func:`recall`, :func:`f1_score`). The numbers are scikit-learn's
  (``accuracy_score``, ``confusion_matrix``, ``precision_recall_fscore_support``), and the tests hold them equal
  on random cases: same label order, same averages, same ``zero_division`` rule.
- **Extractive QA** — SQuAD v1.1's answer normalisation, exact match and token-level F1
  (:func:`normalize_answer`, :func:`squad_exact_match`, :func:`squad_f1`, :func:`squad_scores`).
- **Generated text** — corpus and sentence BLEU with sacreBLEU's 13a tokenisation and smoothing options
  (:func:`corpus_bleu`, :func:`sentence_bleu`, :func:`tokenize_13a`), and ROUGE-1/2/L F-measure with the
  rouge-score package's tokenisation and optional Porter stemming (:func:`rouge_n`, :func:`rouge_l`,
  :func:`rouge_scores`, :func:`porter_stem`). The tests hold them equal to ``sacrebleu`` and ``rouge_score``
  (test-only dependencies) on a few hundred seeded random cases.

Class labels are ints or strings, given as a list/tuple, a 1-D NumPy array or a 1-D torch tensor (bools count as
0/1). Float labels are refused (they are usually logits or probabilities: take the arg-max first). Per-class
results come back as NumPy arrays; averages and scores as Python floats.

    classification.py   exact_match, token_accuracy, accuracy, confusion_matrix, precision_recall_f1, …
    squad.py            normalize_answer, squad_exact_match, squad_f1, squad_scores
    bleu.py             corpus_bleu, sentence_bleu, tokenize_13a
    rouge.py            rouge_n, rouge_l, rouge_scores, rouge_tokenize, porter_stem
"""

from .bleu import BleuScore, corpus_bleu, sentence_bleu, tokenize_13a
from .classification import (
    AVERAGES,
    PrecisionRecallF1,
    accuracy,
    confusion_matrix,
    exact_match,
    f1_score,
    precision,
    precision_recall_f1,
    recall,
    token_accuracy,
)
from .rouge import RougeScore, porter_stem, rouge_l, rouge_n, rouge_scores, rouge_tokenize
from .squad import normalize_answer, squad_exact_match, squad_f1, squad_scores

__all__ = [
    "AVERAGES",
    "BleuScore",
    "PrecisionRecallF1",
    "RougeScore",
    "accuracy",
    "confusion_matrix",
    "corpus_bleu",
    "exact_match",
    "f1_score",
    "normalize_answer",
    "precision",
    "porter_stem",
    "precision_recall_f1",
    "recall",
    "rouge_l",
    "rouge_n",
    "rouge_scores",
    "rouge_tokenize",
    "sentence_bleu",
    "squad_exact_match",
    "squad_f1",
    "squad_scores",
    "token_accuracy",
    "tokenize_13a",
]
