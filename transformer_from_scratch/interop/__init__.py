"""Converters between other projects' checkpoints and ours — the only place their key names appear.

Plain data only: configs, state dicts (name -> tensor), key names, transposes and layouts. Nothing here imports
our models, so the models can call it (``BertModel.from_pretrained``, ``GPT.from_pretrained``, ``GPT.from_hf``,
``EncoderBlock.from_torch`` …). Per Hugging Face family: ``config_from_hf`` / ``config_to_hf``,
``state_dict_from_hf`` / ``state_dict_to_hf`` and ``read_pretrained`` (a local folder).

torch_nn.py       nn.TransformerEncoderLayer / nn.TransformerDecoderLayer / nn.Transformer
hf_bert.py        Hugging Face BertModel / BertForPreTraining state dicts and local checkpoint folders
hf_bert_tasks.py  Hugging Face BertForSequenceClassification / TokenClassification / QuestionAnswering
hf_gpt2.py        Hugging Face GPT2LMHeadModel (Conv1D weights stored transposed, packed q|k|v)
hf_llama.py       Hugging Face LlamaForCausalLM (RMSNorm, SwiGLU, rotate-half RoPE)
hf_causal_lm.py   GPT-2 or Llama, chosen by config.json's model_type (what GPT reads)
hf_xlnet.py       Hugging Face XLNetModel / XLNetLMHeadModel ((D, H, Dh) projections, tied LM head)
hf_t5.py          Hugging Face T5ForConditionalGeneration / T5Model (relative position buckets, tied or untied head)
_hf.py            what the Hugging Face converters share (folders, key and shape checks, LoadResult)
"""

from . import hf_bert, hf_bert_tasks, hf_causal_lm, hf_gpt2, hf_llama, hf_t5, hf_xlnet, torch_nn
from ._hf import LoadResult

__all__ = [
    "hf_bert",
    "hf_bert_tasks",
    "hf_causal_lm",
    "hf_gpt2",
    "hf_llama",
    "hf_t5",
    "hf_xlnet",
    "torch_nn",
    "LoadResult",
]
