"""Pre-training objectives: how raw token ids become (corrupted input, target) training examples.

    mlm.py   masked language modelling (BERT): select 15% of the tokens, 80/10/10 [MASK] / random / unchanged
    nsp.py   next-sentence prediction (BERT): 50% true next segment, 50% a segment from another document
    plm.py   permuted language modelling (XLNet): a random factorization order, predict its last 1/K
    span_corruption.py   T5's span corruption: drop 15% of the tokens in spans, sentinels in the input, spans as target

Every function takes its randomness as ``generator: torch.Generator`` and plain token ids, so the objectives do
not depend on any particular tokenizer or corpus.
"""

from .mlm import MaskedBatch, mask_tokens, replacement_ids, word_ids_from_tokens
from .nsp import IS_NEXT, NOT_NEXT, NSPBatch, NSPExample, collate_nsp, make_nsp_pairs, pack_pair

__all__ = [
    "MaskedBatch",
    "mask_tokens",
    "replacement_ids",
    "word_ids_from_tokens",
    "IS_NEXT",
    "NOT_NEXT",
    "NSPBatch",
    "NSPExample",
    "collate_nsp",
    "make_nsp_pairs",
    "pack_pair",
]

# plm.py   permuted language modelling (XLNet): a random factorization order, content/query masks, the last 1/K
from .plm import (  # noqa: E402
    DEFAULT_K,
    PermutationBatch,
    choose_targets,
    permutation_masks,
    permute_batch,
    ranks_from_order,
    sample_factorization_order,
)

__all__ += [
    "DEFAULT_K",
    "PermutationBatch",
    "choose_targets",
    "permutation_masks",
    "permute_batch",
    "ranks_from_order",
    "sample_factorization_order",
]

# span_corruption.py   T5's span corruption (Raffel et al. 2020, §3.1.4): spans -> sentinels, targets = the spans
from .span_corruption import (  # noqa: E402
    SpanCorruption,
    SpanCorruptionBatch,
    noise_counts,
    random_segmentation,
    random_spans_noise_mask,
    reconstruct,
    span_corrupt,
    span_corrupt_batch,
    t5_sentinel_ids,
)

__all__ += [
    "SpanCorruption",
    "SpanCorruptionBatch",
    "noise_counts",
    "random_segmentation",
    "random_spans_noise_mask",
    "reconstruct",
    "span_corrupt",
    "span_corrupt_batch",
    "t5_sentinel_ids",
]
