"""Complete models assembled from the blocks: one file per family.

transformer.py   EncoderDecoder — the 2017 encoder–decoder Transformer (Vaswani et al.)
"""

from .transformer import EncoderDecoder

__all__ = ["EncoderDecoder"]
