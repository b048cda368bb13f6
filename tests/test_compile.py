"""torch.compile sees each model's forward pass as one graph: no .item(), int(tensor) or other host read of a tensor
breaks it (DESIGN.md §6). The same property keeps the input checks from stopping the host on an accelerator.

``fullgraph=True`` makes any graph break an error; the "eager" backend traces with TorchDynamo but runs the captured
graph without compiling kernels, so the test stays fast on a CPU.
"""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from transformer_from_scratch import (
    GPT,
    BertConfig,
    BertForPreTraining,
    EncoderDecoder,
    GPTConfig,
    TransformerConfig,
    XLNetConfig,
    XLNetLMHeadModel,
)
from transformer_from_scratch.objectives import permute_batch

V = 64


def gpt(impl):
    return GPT(GPTConfig.tiny(vocab_size=V, impl=impl)), lambda m, x: m(x, labels=x).loss


def llama(impl):
    return GPT(GPTConfig.llama_tiny(vocab_size=V, impl=impl)), lambda m, x: m(x, labels=x).loss


def bert(impl):
    model = BertForPreTraining(BertConfig.tiny(vocab_size=V, impl=impl))
    return model, lambda m, x: m(x, mlm_labels=x, nsp_labels=x[:, 0] % 2).loss


def encoder_decoder(impl):
    model = EncoderDecoder(TransformerConfig.tiny(src_vocab_size=V, tgt_vocab_size=V, impl=impl))
    return model, lambda m, x: m(x, x, labels=x).loss


def xlnet(impl):
    """The permutation is drawn outside the graph (for the test's (2, 9) inputs): the objective sizes its target
    mapping from the data, the model's forward pass does not."""
    model = XLNetLMHeadModel(XLNetConfig.tiny(vocab_size=V, impl=impl))
    batch = permute_batch(torch.zeros(2, 9, dtype=torch.long), k=3, generator=torch.Generator().manual_seed(2))
    filled = batch.target_mapping.any(-1)  # (B, P)

    def loss_of(m, x):
        labels = torch.where(filled, (batch.target_mapping.long() * x[:, None, :]).sum(-1), -100)  # (B, P)
        masks = dict(content_allowed=batch.content_allowed, query_allowed=batch.query_allowed)
        return m(x, **masks, target_mapping=batch.target_mapping, labels=labels).loss

    return model, loss_of


CASES = [(gpt, impl) for impl in ("plain", "kernels", "torch")] + [(llama, "plain"), (bert, "plain")]
CASES += [(encoder_decoder, "plain")] + [(xlnet, impl) for impl in ("plain", "kernels", "torch")]


@pytest.mark.parametrize(("make", "impl"), CASES, ids=lambda c: getattr(c, "__name__", c))
def test_forward_and_loss_compile_into_one_graph(make, impl):
    torch.manual_seed(0)
    model, loss_of = make(impl)
    torch._dynamo.reset()
    compiled = torch.compile(lambda x: loss_of(model, x), fullgraph=True, backend="eager")
    x = torch.randint(1, V, (2, 9), generator=torch.Generator().manual_seed(1))
    assert_close(compiled(x), loss_of(model, x), rtol=1e-6, atol=1e-6)


def test_a_bad_token_id_still_fails_inside_a_compiled_graph():
    """Inside a graph the ids are checked on the device (torch._assert_async) instead of read by the host."""
    model = GPT(GPTConfig.tiny(vocab_size=V))
    torch._dynamo.reset()
    compiled = torch.compile(lambda x: model(x).logits, fullgraph=True, backend="eager")
    compiled(torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(RuntimeError, match="input_ids: a token id is outside the vocabulary of size 64"):
        compiled(torch.full((1, 3), V))
