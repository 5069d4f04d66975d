"""Build a `tokenizers` tokenizer (tokenizer.json) equivalent to a SentencePiece BPE model.

SentencePiece BPE merges the adjacent pair whose merged piece scores highest. A `tokenizers` BPE
merges by rank, so the ranks are derived from the scores: every split of every piece into two
pieces of the vocabulary is a merge, ranked by the merged piece's score. Spaces become "▁"
(Metaspace, prepended always), unknown characters fall back to <0xHH> byte pieces. Knows nothing
about models; used by the llama2.c importer so the loader never needs sentencepiece at runtime.
"""
from __future__ import annotations

from pathlib import Path

_SPACE = "▁"
_BPE_MODEL_TYPE = 2  # sentencepiece TrainerSpec.ModelType.BPE


def tokenizer_from_sentencepiece(model_path: str | Path):
    """A `tokenizers.Tokenizer` that encodes and decodes like the SentencePiece BPE model."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    processor = _load(Path(model_path))
    vocab, scores, specials = {}, {}, []
    for token_id in range(processor.GetPieceSize()):
        piece = processor.IdToPiece(token_id)
        vocab[piece] = token_id
        if processor.IsControl(token_id) or processor.IsUnknown(token_id):
            specials.append(piece)
        elif not processor.IsByte(token_id):
            scores[piece] = processor.GetScore(token_id)
    unk = processor.IdToPiece(processor.unk_id()) if processor.unk_id() >= 0 else None
    bpe = models.BPE(vocab=vocab, merges=_merges(vocab, scores), unk_token=unk, fuse_unk=True,
                     byte_fallback=True)
    tokenizer = Tokenizer(bpe)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_SPACE, prepend_scheme="always",
                                                       split=False)
    tokenizer.decoder = decoders.Sequence([
        decoders.Replace(_SPACE, " "), decoders.ByteFallback(), decoders.Fuse(),
        decoders.Strip(content=" ", left=1, right=0),  # the space Metaspace prepended
    ])
    tokenizer.add_special_tokens([AddedToken(piece, special=True, normalized=False)
                                  for piece in specials])
    if processor.bos_id() >= 0:  # transformers adds BOS through the post-processor
        bos = processor.IdToPiece(processor.bos_id())
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos}:1 $B:1",
            special_tokens=[(bos, processor.bos_id())])
    return tokenizer


def _merges(vocab: dict[str, int], scores: dict[str, float]) -> list[tuple[str, str]]:
    """Every (left, right) whose concatenation is a scored piece, best merged score first."""
    ranked = []
    for merged, score in scores.items():
        for cut in range(1, len(merged)):
            left, right = merged[:cut], merged[cut:]
            if left in scores and right in scores:
                ranked.append((-score, vocab[merged], vocab[left], left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def _load(path: Path):
    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2

    try:
        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString(path.read_bytes())
        processor = sentencepiece.SentencePieceProcessor()
        processor.LoadFromSerializedProto(proto.SerializeToString())
    except Exception as e:  # protobuf DecodeError / sentencepiece RuntimeError: not a model file
        raise ValueError(f"{path}: not a sentencepiece model ({e})") from e
    if proto.trainer_spec.model_type != _BPE_MODEL_TYPE:
        raise ValueError(f"{path}: only sentencepiece BPE models convert to tokenizer.json "
                         f"(model_type={proto.trainer_spec.model_type})")
    return processor
