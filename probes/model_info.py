"""What a model is, read from its HF config without loading weights or importing torch.

:class:`ModelInfo` is the architecture summary every page and command shows; the dashboard saves it so a
later start can draw a model's grid before loading the model.

>>> ModelInfo("m", "LlamaForCausalLM", 2, 4, 2, 64, 16, 128, 100, "rotary", 512, False).gqa_groups
2
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ModelInfo", "model_info_from_config"]


@dataclass(frozen=True)
class ModelInfo:
    """Architecture summary read from the HF config."""

    name: str
    architecture: str  # HF class, e.g. "LlamaForCausalLM"
    n_layers: int
    n_heads: int  # query heads
    n_kv_heads: int  # key/value heads (== n_heads without GQA)
    d_model: int
    d_head: int
    d_mlp: int | None
    vocab_size: int
    positional: str  # "rotary (theta=...)" or "learned absolute"
    n_ctx: int | None  # max positions the config declares
    tied_embeddings: bool

    @property
    def gqa_groups(self) -> int:
        """Query heads per key/value head (1 without GQA)."""
        return self.n_heads // self.n_kv_heads

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "gqa_groups": self.gqa_groups}


def model_info_from_config(config: Any, name: str) -> ModelInfo:
    """Build a :class:`ModelInfo` from a HF ``PretrainedConfig`` (text part for multimodal configs)."""
    cfg = getattr(config, "text_config", None) or config
    n_heads = cfg.num_attention_heads
    d_model = cfg.hidden_size
    if getattr(cfg, "model_type", "") in ("gpt2", "gpt_neo", "opt") or hasattr(cfg, "n_positions"):
        positional = "learned absolute"
    else:
        positional = _rotary_description(cfg)
    archs = getattr(config, "architectures", None) or [type(config).__name__.replace("Config", "ForCausalLM")]
    return ModelInfo(
        name=name,
        architecture=archs[0],
        n_layers=cfg.num_hidden_layers,
        n_heads=n_heads,
        n_kv_heads=getattr(cfg, "num_key_value_heads", None) or n_heads,
        d_model=d_model,
        d_head=getattr(cfg, "head_dim", None) or d_model // n_heads,
        d_mlp=getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None),
        vocab_size=cfg.vocab_size,
        positional=positional,
        n_ctx=getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None),
        tied_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
    )


def _rotary_description(cfg) -> str:
    """E.g. ``rotary (theta=100000)``; per attention type for models that mix them (Gemma-3)."""
    rope = getattr(cfg, "rope_parameters", None) or {}
    if isinstance(rope, dict) and all(isinstance(v, dict) for v in rope.values()) and rope:
        parts = [
            f"{kind.replace('_attention', '')} theta={v.get('rope_theta', 0):g}" for kind, v in rope.items()
        ]
        window = getattr(cfg, "sliding_window", None)
        return f"rotary ({', '.join(parts)}" + (f"; sliding window {window})" if window else ")")
    theta = (rope.get("rope_theta") if isinstance(rope, dict) else None) or getattr(cfg, "rope_theta", None)
    return f"rotary (theta={theta:g})" if theta else "rotary"
