"""Recipes: one module per model family, each a complete, measured training run in one shape.

    seq2seq.py   train_seq2seq(data, model_config, train_config) -> Run   the 2017 encoder–decoder: copy / reverse
    bert.py      train_bert(data, model_config, train_config) -> Run      a tiny BERT, MLM + NSP
    gpt.py       train_gpt(data, model_config, train_config) -> Run       a GPT language model on text
    xlnet.py     train_xlnet(data, model_config, train_config) -> Run     a tiny XLNet, permuted language modelling
    finetune.py  a pre-trained encoder (a `tfs train bert` run or a Hugging Face BERT folder) fine-tuned for
                 classification (sentiment, topic) or extractive QA (bAbI stories), against baselines

Each recipe comes with the named steps that feed it — the data (``seq2seq_data``, ``prepare_bert_data``,
``load_lm_data``, ``prepare_xlnet_data``), the model (``seq2seq_model_config``, ``bert_model_config``,
``gpt_model_config``, ``xlnet_model_config``) and the optimisation (``seq2seq_train_config``, ``bert_train_config``,
``gpt_train_config``, ``xlnet_train_config``) — and returns a
:class:`~.runs.Run`: the trained model, its tokenizer, the history, a report of held-out numbers, the data and
the trainer. ``runs.py`` holds what they share — the run folder, resuming — and ``saved.py`` reads a run
folder back (``load_run``, ``evaluate_run``). The generic machinery (the trainer, checkpoints, the
optimiser) lives in ``training/``; recipes are where it meets the models, the data and the metrics.
"""

from . import bert, finetune, gpt, runs, saved, seq2seq, xlnet
from .bert import BertReport, bert_model_config, bert_train_config, prepare_bert_data, train_bert
from .gpt import LMReport, gpt_model_config, gpt_train_config, load_lm_data, train_gpt
from .runs import Run, make_run_folder
from .seq2seq import Seq2SeqReport, seq2seq_data, seq2seq_model_config, seq2seq_train_config, train_seq2seq
from .xlnet import XLNetReport, prepare_xlnet_data, train_xlnet, xlnet_model_config, xlnet_train_config

__all__ = [
    "bert",
    "finetune",
    "gpt",
    "runs",
    "saved",
    "seq2seq",
    "xlnet",
    "Run",
    "make_run_folder",
    "BertReport",
    "bert_model_config",
    "bert_train_config",
    "prepare_bert_data",
    "train_bert",
    "LMReport",
    "gpt_model_config",
    "gpt_train_config",
    "load_lm_data",
    "train_gpt",
    "Seq2SeqReport",
    "seq2seq_data",
    "seq2seq_model_config",
    "seq2seq_train_config",
    "train_seq2seq",
    "XLNetReport",
    "prepare_xlnet_data",
    "xlnet_model_config",
    "xlnet_train_config",
    "train_xlnet",
]
