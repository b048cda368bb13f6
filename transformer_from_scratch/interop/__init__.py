"""Converters between our modules and other projects' checkpoints — the only place their key names appear.

torch_nn.py   nn.TransformerEncoderLayer / nn.TransformerDecoderLayer / nn.Transformer
hf_bert.py    Hugging Face BertModel / BertForPreTraining state dicts and local checkpoint folders
hf_gpt2.py    Hugging Face GPT2LMHeadModel (Conv1D weights stored transposed, packed q|k|v)
hf_llama.py   Hugging Face LlamaForCausalLM (RMSNorm, SwiGLU, rotate-half RoPE)
hf_causal_lm.py   GPT-2 or Llama, chosen by config.json's model_type (what GPT.from_pretrained reads)
_hf.py        what the Hugging Face converters share (folders, key and shape checks, LoadResult)
"""

from . import hf_bert, hf_causal_lm, hf_gpt2, hf_llama, torch_nn

__all__ = ["hf_bert", "hf_causal_lm", "hf_gpt2", "hf_llama", "torch_nn"]
