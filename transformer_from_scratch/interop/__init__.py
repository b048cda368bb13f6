"""Converters between our modules and other projects' checkpoints — the only place their key names appear.

torch_nn.py   nn.TransformerEncoderLayer / nn.TransformerDecoderLayer / nn.Transformer
"""

from . import torch_nn

__all__ = ["torch_nn"]
