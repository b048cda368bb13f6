"""Complete models assembled from the blocks: one file per family.

transformer.py   EncoderDecoder — the 2017 encoder–decoder Transformer (Vaswani et al.)
"""

from .transformer import EncoderDecoder, Seq2SeqOutput

__all__ = ["EncoderDecoder", "Seq2SeqOutput"]

# bert.py   BertModel, BertForPreTraining — BERT (Devlin et al. 2019), Hugging Face checkpoints via interop.hf_bert
from .bert import BertEmbeddings, BertForPreTraining, BertModel, BertOutput, BertPreTrainingOutput  # noqa: E402

__all__ += ["BertEmbeddings", "BertModel", "BertForPreTraining", "BertOutput", "BertPreTrainingOutput"]

# bert_tasks.py  BertFor{Sequence,Token}Classification, BertForQuestionAnswering — HF via interop.hf_bert_tasks
from .bert_tasks import (  # noqa: E402
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertQuestionAnsweringOutput,
    BertSequenceClassificationOutput,
    BertTokenClassificationOutput,
)

__all__ += [
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
    "BertSequenceClassificationOutput",
    "BertTokenClassificationOutput",
    "BertQuestionAnsweringOutput",
]

# gpt.py    GPT — decoder-only LM (GPT-2; Llama-style by configuration), Hugging Face via interop.hf_gpt2 / hf_llama;
#           GPTForSequenceClassification — the last real token scored by a linear layer
from .gpt import (  # noqa: E402
    GPT,
    GPTForSequenceClassification,
    GPTOutput,
    GPTSequenceClassificationOutput,
    causal_lm_loss,
    positions_from_valid,
)

__all__ += [
    "GPT",
    "GPTOutput",
    "GPTForSequenceClassification",
    "GPTSequenceClassificationOutput",
    "causal_lm_loss",
    "positions_from_valid",
]

# xlnet.py  XLNetModel, XLNetLMHeadModel — two-stream permuted LM (Yang et al. 2019), Hugging Face via interop.hf_xlnet
from .xlnet import XLNetLMHeadModel, XLNetLMOutput, XLNetModel, XLNetOutput  # noqa: E402

__all__ += ["XLNetModel", "XLNetLMHeadModel", "XLNetOutput", "XLNetLMOutput"]

# t5.py     T5Model, T5ForConditionalGeneration — text-to-text encoder–decoder (Raffel et al. 2020), HF: interop.hf_t5
from .t5 import T5ForConditionalGeneration, T5Model, T5Output  # noqa: E402

__all__ += ["T5Model", "T5ForConditionalGeneration", "T5Output"]
