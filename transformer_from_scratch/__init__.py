"""transformer_from_scratch — a readable, proven-correct Transformer library and the course built on it.

Start with ``functional.scaled_dot_product_attention`` (the textbook formula) and ``attention.MultiHeadAttention``;
every module has a NumPy float64 twin in ``reference/`` and a row in ``tfs verify``. ``kernels.py`` (hand-written
backward passes) and ``fused.py`` (PyTorch's built-ins) compute the same functions, selected by ``impl``.
"""

__version__ = "0.1.0"

from . import (  # noqa: E402
    functional,
    fused,
    generation,
    heads,
    interop,
    kernels,
    layers,
    masks,
    objectives,
    pooling,
    positional,
    tokenizers,
)
from .attention import EncoderDecoderKVCache, KVCache, LayerKVCache, MultiHeadAttention  # noqa: E402
from .blocks import DecoderBlock, EncoderBlock  # noqa: E402
from .config import BertConfig, BlockConfig, GPTConfig, T5Config, TransformerConfig, XLNetConfig  # noqa: E402
from .heads import (  # noqa: E402
    CLSPooler,
    MLMHead,
    NSPHead,
    PLMHead,
    SequenceClassificationHead,
    SpanQAHead,
    TokenClassificationHead,
    best_span,
)
from .layers import FeedForward, LayerNorm, RMSNorm, TokenEmbedding  # noqa: E402
from .models import (  # noqa: E402
    GPT,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    EncoderDecoder,
    GPTForSequenceClassification,
    GPTOutput,
    Seq2SeqOutput,
    T5ForConditionalGeneration,
    T5Model,
    XLNetLMHeadModel,
    XLNetModel,
)
from .positional import (  # noqa: E402
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    sinusoidal_table,
)
from .stacks import CausalDecoder, Decoder, Encoder, StackOutput  # noqa: E402
from .tokenizers import BPETokenizer, CharTokenizer, WordPieceTokenizer, WordTokenizer  # noqa: E402

__all__ = [
    "__version__",
    "functional",
    "kernels",
    "fused",
    "generation",
    "heads",
    "interop",
    "objectives",
    "pooling",
    "tokenizers",
    "layers",
    "masks",
    "positional",
    "MultiHeadAttention",
    "KVCache",
    "LayerKVCache",
    "GPT",
    "GPTConfig",
    "GPTOutput",
    "EncoderBlock",
    "DecoderBlock",
    "Encoder",
    "Decoder",
    "CausalDecoder",
    "StackOutput",
    "BlockConfig",
    "Seq2SeqOutput",
    "EncoderDecoder",
    "TransformerConfig",
    "BertConfig",
    "BertModel",
    "BertForPreTraining",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
    "GPTForSequenceClassification",
    "MLMHead",
    "NSPHead",
    "PLMHead",
    "XLNetConfig",
    "XLNetModel",
    "XLNetLMHeadModel",
    "T5Config",
    "T5Model",
    "T5ForConditionalGeneration",
    "EncoderDecoderKVCache",
    "CLSPooler",
    "SequenceClassificationHead",
    "TokenClassificationHead",
    "SpanQAHead",
    "best_span",
    "CharTokenizer",
    "WordTokenizer",
    "WordPieceTokenizer",
    "BPETokenizer",
    "LayerNorm",
    "RMSNorm",
    "FeedForward",
    "TokenEmbedding",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEmbedding",
    "RotaryEmbedding",
    "sinusoidal_table",
]
