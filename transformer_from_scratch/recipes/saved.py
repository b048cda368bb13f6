"""Runs read back: the trained model of a run folder with its tokenizer — to generate from, or to measure again.

    load_run(path)             the model of a run folder (its newest checkpoint) or of one step folder, in eval mode
    rebuild_data(trained)      the run's data, rebuilt from run.json and checked against its fingerprint
    evaluate_run(trained)      the held-out numbers of the run's recipe, computed again from the checkpoint

``tfs generate`` and ``tfs evaluate`` are these three functions and a print. A run folder is described in
:mod:`.runs`; which recipe wrote it is ``run.json``'s ``task``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..config import BertConfig, GPTConfig, TransformerConfig, XLNetConfig
from ..datasets import synthetic
from ..models import EncoderDecoder
from ..models.bert import BertForPreTraining
from ..models.gpt import GPT
from ..models.xlnet import XLNetLMHeadModel
from ..tokenizers.base import Tokenizer
from ..training import CheckpointError, load_model_weights
from . import bert, gpt, seq2seq, xlnet
from .runs import RunFolderError, SavedRun, read_run, run_folder_of

__all__ = ["SEQ2SEQ_TASKS", "TrainedRun", "load_run", "rebuild_data", "evaluate_run"]

SEQ2SEQ_TASKS = synthetic.TASKS
_MODELS = {
    "gpt": (GPTConfig, GPT),
    "bert": (BertConfig, BertForPreTraining),
    "xlnet": (XLNetConfig, XLNetLMHeadModel),
}


@dataclass
class TrainedRun:
    """A run folder read back: ``saved`` (its files, :class:`~.runs.SavedRun`), the ``checkpoint`` loaded, the
    ``model`` in eval mode and the ``tokenizer`` (a ``Tokenizer``, or the ``SymbolVocab`` of a synthetic task)."""

    saved: SavedRun
    checkpoint: Path
    model: nn.Module
    tokenizer: Any

    @property
    def task(self) -> str:
        return self.saved.task


def load_run(path: str | os.PathLike) -> TrainedRun:
    """The model of the run folder ``path`` at its newest checkpoint (or at the step folder ``path``), with the
    run's tokenizer. One-line :class:`~.runs.RunFolderError` when the folder is not a run, has no checkpoint, or
    its files do not fit together."""
    saved = read_run(path)
    _, checkpoint = run_folder_of(path)
    if checkpoint is None:
        raise RunFolderError(f"{saved.folder} holds no checkpoint yet: nothing to load")
    if saved.task in _MODELS:
        config_class, model_class = _MODELS[saved.task]
    elif saved.task in SEQ2SEQ_TASKS:
        config_class, model_class = TransformerConfig, EncoderDecoder
    else:
        raise RunFolderError(f"{saved.folder} is a run of {saved.task!r}, which this version cannot load")
    try:
        model = model_class(config_class(**saved.model_config))
    except (TypeError, ValueError) as e:
        raise RunFolderError(
            f"{saved.folder}/model_config.json does not describe a {model_class.__name__}: {e}"
        ) from None
    try:
        load_model_weights(checkpoint, model)
    except (CheckpointError, ValueError, RuntimeError) as e:
        raise RunFolderError(f"{checkpoint} cannot be loaded: {e}") from None
    return TrainedRun(saved, checkpoint, model.eval(), _tokenizer(saved))


def _tokenizer(saved: SavedRun) -> Any:
    if saved.task in SEQ2SEQ_TASKS:
        return synthetic.SymbolVocab((saved.data or {}).get("alphabet_size", 10))
    if saved.tokenizer is None:
        raise RunFolderError(f"{saved.folder} has no tokenizer.json")
    try:
        return Tokenizer.from_dict(saved.tokenizer)
    except (KeyError, TypeError, ValueError) as e:
        raise RunFolderError(f"{saved.folder}/tokenizer.json is damaged: {e}") from None


def rebuild_data(trained: TrainedRun) -> Any:
    """The data the run trained on, rebuilt from ``run.json`` (``Seq2SeqData``, ``LMData``, ``BertData`` or
    ``XLNetData``);
    refused when run.json cannot name it (data given as objects) or the rebuilt data's fingerprint differs (the
    text file changed since)."""
    saved = trained.saved
    if saved.data is None:
        raise RunFolderError(f"{saved.folder} was trained on data given in Python; run.json cannot rebuild it")
    if saved.task in SEQ2SEQ_TASKS:
        data = seq2seq.seq2seq_data(**saved.data)
    elif saved.task == "gpt":
        data = gpt.load_lm_data(**saved.data)
    elif saved.task == "xlnet":
        data = xlnet.prepare_xlnet_data(**saved.data)
    else:
        data = bert.prepare_bert_data(**saved.data)
    if data.fingerprint() != saved.data_fingerprint:
        raise RunFolderError(f"the data rebuilt from {saved.folder}/run.json differs from what the run trained on")
    return data


def evaluate_run(trained: TrainedRun, *, beam_size: int = 1, eval_tokens: int | None = 50_000) -> dict[str, float]:
    """The recipe's held-out numbers for the loaded checkpoint: exact match on the test strings (synthetic tasks,
    greedy or beam search); validation loss, perplexity and the unigram baseline (GPT, over the first
    ``eval_tokens`` targets as :func:`~.gpt.gpt_report`); masked-token and NSP accuracy (BERT); the held-out PLM
    loss against the unigram baseline (XLNet, :func:`~.xlnet.evaluate_xlnet`)."""
    data, model = rebuild_data(trained), trained.model
    if trained.task in SEQ2SEQ_TASKS:
        test = data.splits.test
        accuracy = seq2seq.evaluate_exact_match(model, test, beam_size=beam_size, vocab=data.vocab)
        return {"exact_match": accuracy, "test_pairs": float(len(test))}
    if trained.task == "gpt":
        result = gpt.evaluate_lm(model, data.validation, model.config.max_len, max_tokens=eval_tokens)
        n = int(result["val_tokens"])
        baseline = gpt.unigram_loss(data.train, data.validation[1 : 1 + n], data.vocab_size)
        return {**result, "unigram_loss": baseline}
    if trained.task == "xlnet":
        return xlnet.evaluate_xlnet(model, data)
    tokenizer = data.tokenizer
    return bert.evaluate_bert(model, data.heldout_batches, mask_id=tokenizer.mask_id, unigram_token=data.unigram_token)
