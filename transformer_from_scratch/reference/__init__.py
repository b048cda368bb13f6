"""NumPy float64 reference implementations, written for the eye — never imports torch.

The torch code in float64 must match these to rtol=1e-10 (see ``verification.py`` and the tests).
"""

from .attention import multi_head_attention, scaled_dot_product_attention, softmax
from .layers import feed_forward, gelu, gelu_tanh, layer_norm, relu, rms_norm, silu
from .masks import causal_mask, cross_attention_mask, key_padding, padding_mask_from_ids, padding_mask_from_lengths
from .positional import rope, sinusoidal_table
from .t5 import shift_right, t5_decoder, t5_encoder, t5_forward, t5_loss, t5_position_bias
from .xlnet import XLNetStreams, plm_loss, relative_encoding, xlnet_lm

__all__ = [
    "softmax",
    "scaled_dot_product_attention",
    "multi_head_attention",
    "causal_mask",
    "padding_mask_from_lengths",
    "padding_mask_from_ids",
    "key_padding",
    "cross_attention_mask",
    "layer_norm",
    "rms_norm",
    "relu",
    "gelu",
    "gelu_tanh",
    "silu",
    "feed_forward",
    "sinusoidal_table",
    "rope",
    "XLNetStreams",
    "relative_encoding",
    "xlnet_lm",
    "plm_loss",
    "t5_position_bias",
    "t5_encoder",
    "t5_decoder",
    "t5_forward",
    "t5_loss",
    "shift_right",
]
