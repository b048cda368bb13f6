"""Complete models assembled from the blocks: one file per family.

transformer.py   EncoderDecoder — the 2017 encoder–decoder Transformer (Vaswani et al.)
"""

from .transformer import EncoderDecoder, Seq2SeqOutput

__all__ = ["EncoderDecoder", "Seq2SeqOutput"]

# bert.py   BertModel, BertForPreTraining — BERT (Devlin et al. 2019), Hugging Face checkpoints via interop.hf_bert
from .bert import BertEmbeddings, BertForPreTraining, BertModel, BertOutput, BertPreTrainingOutput  # noqa: E402

__all__ += ["BertEmbeddings", "BertModel", "BertForPreTraining", "BertOutput", "BertPreTrainingOutput"]

# gpt.py    GPT — decoder-only LM (GPT-2; Llama-style by configuration), Hugging Face via interop.hf_gpt2 / hf_llama
from .gpt import GPT, GPTOutput, causal_lm_loss, positions_from_valid  # noqa: E402

__all__ += ["GPT", "GPTOutput", "causal_lm_loss", "positions_from_valid"]

# xlnet.py  XLNetModel, XLNetLMHeadModel — two-stream permuted LM (Yang et al. 2019), Hugging Face via interop.hf_xlnet
from .xlnet import XLNetLMHeadModel, XLNetLMOutput, XLNetModel, XLNetOutput  # noqa: E402

__all__ += ["XLNetModel", "XLNetLMHeadModel", "XLNetOutput", "XLNetLMOutput"]
