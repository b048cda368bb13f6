"""Converters between our modules and other projects' checkpoints — the only place their key names appear.

torch_nn.py   nn.TransformerEncoderLayer / nn.TransformerDecoderLayer / nn.Transformer
hf_bert.py    Hugging Face BertModel / BertForPreTraining state dicts and local checkpoint folders
"""

from . import hf_bert, torch_nn

__all__ = ["hf_bert", "torch_nn"]
