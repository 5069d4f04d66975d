"""Model building blocks that call chip ops. Models in `model/` are assembled from these."""
from framework.layers.activation import SiluAndMul
from framework.layers.attention import Attention
from framework.layers.attention_metadata import AttentionMetadata, attention_metadata, get_attention_metadata
from framework.layers.embedding import Embedding
from framework.layers.linear import Linear
from framework.layers.norm import RMSNorm
from framework.layers.rotary import RotaryEmbedding

__all__ = ["Attention", "AttentionMetadata", "Embedding", "Linear", "RMSNorm", "RotaryEmbedding",
           "SiluAndMul", "attention_metadata", "get_attention_metadata"]
