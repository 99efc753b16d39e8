"""Activation capture at named sites, through TransformerLens or nnsight, with truncation and a disk cache.

>>> from probes.testing import tiny_handle
>>> acts = capture(tiny_handle(), ["the cat sat", "a dog"], ["resid_post.0", "z.1"], progress=False)
>>> tuple(acts["resid_post.0"].shape), tuple(acts["z.1"].shape)
((2, 32), (2, 4, 8))
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from jaxtyping import Int
from torch import Tensor

from probes.activation_cache import ActivationCache
from probes.architecture import decoder_layers, out_proj, w_o
from probes.errors import InputError
from probes.handle import ModelHandle
from probes.sites import Site, head_out_from_z, parse_sites

MODES = ("last", "all")


@dataclass
class Activations:
    """Captured activations: ``acts[site]`` is ``[batch, ...]`` (last) or ``[batch, pos, ...]`` (all).

    In ``all`` mode sequences are right-padded to the longest prompt; positions ``>= lengths[i]`` are 0.
    """

    acts: dict[str, Tensor]
    lengths: Int[Tensor, " batch"]
    prompts: list[str]
    mode: str
    model: str
    from_cache: bool = False
    tokens: Int[Tensor, "batch pos"] | None = field(default=None, repr=False)

    def __getitem__(self, site: str) -> Tensor:
        try:
            return self.acts[site]
        except KeyError:
            raise InputError(f"Site {site!r} was not captured; captured: {', '.join(self.acts)}.") from None

    @property
    def sites(self) -> list[str]:
        return list(self.acts)


def _envoy(root, path: str):
    env = root
    for part in path.split("."):
        env = env[int(part)] if part.isdigit() else getattr(env, part)
    return env


def _module_path(lm, hf_model, module) -> str:
    """Dotted path of ``module`` in the nnsight envoy tree of ``lm``.

    Once ``ModelHandle.tl`` is built the TransformerLens bridge has wrapped HF submodules in place, so a
    module can be reachable under several names (``..._original_component.o_proj``, a bridge alias such
    as ``attn.o``); the envoy tree mirrors the plain HF tree (the handle builds it first), so take the
    first name, with the bridge wrappers skipped, that resolves there.
    """
    for name, mod in hf_model.named_modules(remove_duplicate=False):
        if mod is module:
            plain = name.replace("._original_component", "")
            try:
                _envoy(lm, plain)
            except (AttributeError, IndexError):
                continue
            return plain
    raise InputError(f"Module {type(module).__name__} is not part of the model.")


def _first(x):
    return x[0] if isinstance(x, tuple) else x


def _run_nnsight(
    handle: ModelHandle, ids: Tensor, sites: list[Site], truncate: bool, remote: bool | str = False
) -> dict[str, Tensor]:
    """One nnsight trace, written by nnsight 0.8's remote rules so the same code runs on NDIF: every
    value is saved inside the trace, into one saved container (appends to an outside list are lost
    remotely)."""
    import nnsight

    lm = handle.nnsight
    layers = decoder_layers(handle.hf)
    paths = {}
    for s in sites:
        layer_path = _module_path(lm, handle.hf, layers[s.layer])
        if s.kind in ("z", "head_out", "attn_out"):
            paths[s] = _module_path(lm, handle.hf, out_proj(layers[s.layer]))
        elif s.kind == "mlp_out":
            paths[s] = layer_path + ".mlp"
        else:
            paths[s] = layer_path
    with lm.trace(ids, **trace_options(remote)) as tracer:
        saved = nnsight.save({})  # one saved container, filled inside the trace
        for s in sites:  # sites are in execution order, as nnsight requires
            env = _envoy(lm, paths[s])
            saved[s.name] = env.input if s.kind in ("resid_pre", "z", "head_out") else env.output
        if truncate:
            tracer.stop()
    return {name: _first(v) for name, v in saved.items()}


def ndif_host(remote: bool | str) -> str | None:
    """The NDIF endpoint a remote trace goes to: ``remote`` when it is a URL, else ``SUBLENS_NDIF_HOST``,
    else nnsight's configured default; None for a local trace.

    >>> ndif_host(False) is None
    True
    >>> ndif_host("http://127.0.0.1:8001")
    'http://127.0.0.1:8001'
    """
    if remote is False or remote is None:
        return None
    if isinstance(remote, str):
        return remote
    from nnsight import CONFIG

    return os.environ.get("SUBLENS_NDIF_HOST") or CONFIG.API.HOST


def trace_options(remote: bool | str) -> dict:
    """Keyword arguments of ``lm.trace`` for a local (``{}``) or remote trace (points nnsight at the host).

    NDIF runs the trace's code inside the model server: use a host you trust (localhost or a private
    network for a self-hosted one). The server must serve the same model (a hub id it hosts).
    """
    host = ndif_host(remote)
    if host is None:
        return {}
    from nnsight import CONFIG

    CONFIG.API.HOST = host
    return {"remote": True}


def _run_tl(handle: ModelHandle, ids: Tensor, sites: list[Site], truncate: bool) -> dict[str, Tensor]:
    bridge = handle.tl
    hooks = {s.tl_hook() for s in sites}
    stop = max(s.layer for s in sites) + 1
    stop = stop if truncate and stop < handle.info.n_layers else None
    _, cache = bridge.run_with_cache(ids, names_filter=lambda n: n in hooks, stop_at_layer=stop)
    return {s.name: cache[s.tl_hook()] for s in sites}


def _finish(site: Site, x: Tensor, handle: ModelHandle) -> Tensor:
    """Bring a raw captured tensor to the documented shape ``[batch, pos, ...]``."""
    x = _first(x)
    if site.kind in ("z", "head_out"):
        x = x.reshape(*x.shape[:2], handle.info.n_heads, -1)
        if site.kind == "head_out":
            x = head_out_from_z(x, w_o(handle.hf, site.layer, handle.info.n_heads).detach())
    return x


def _batches(order: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(order), size):
        yield order[i : i + size]


def capture(
    handle: ModelHandle,
    prompts: list[str],
    sites: str | list[str],
    *,
    mode: str = "last",
    backend: str = "tl",
    batch_size: int = 8,
    chat: bool = True,
    truncate: bool = True,
    cache: ActivationCache | bool | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
    remote: bool | str = False,
) -> Activations:
    """Run ``prompts`` through the model and return activations at ``sites``.

    Args:
        sites: names like ``"resid_post.5"``, ``"z.3"``, ``"resid_pre.*"`` (see :mod:`probes.sites`).
        mode: ``"last"`` keeps each prompt's last token; ``"all"`` keeps every position.
        backend: ``"tl"`` (TransformerLens bridge hooks) or ``"nnsight"`` (trace); identical values.
        chat: apply the model's chat template (user turn + generation prompt) where it has one.
        truncate: stop the forward pass after the last layer any site needs.
        cache: an :class:`ActivationCache`, ``True`` for the default one, or ``None``/``False``.
        remote: run the nnsight trace on NDIF (``True``: ``SUBLENS_NDIF_HOST`` or nnsight's host; a URL:
            that host); needs ``backend="nnsight"`` and a model the server hosts.
    """
    if mode not in MODES:
        raise InputError(f"Unknown mode {mode!r}; choose 'last' or 'all'.")
    if backend not in ("tl", "nnsight"):
        raise InputError(f"Capture backend must be 'tl' or 'nnsight', got {backend!r}.")
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}.")
    if remote and backend != "nnsight":
        raise InputError("A remote capture runs through nnsight: pass backend='nnsight' with remote.")
    parsed = parse_sites(sites, handle.info.n_layers)
    ids, lengths = handle.tokenize(prompts, chat=chat)  # validates prompts
    store = ActivationCache() if cache is True else (cache or None)
    key = None
    if store is not None:
        key = store.key(handle, prompts, [s.name for s in parsed], mode=mode, chat=chat, dtype=dtype)
        hit = store.load(key)
        if hit is not None:
            acts, cached_lengths = hit
            return Activations(
                acts, cached_lengths, list(prompts), mode, handle.name, from_cache=True, tokens=ids
            )

    run = _run_tl if backend == "tl" else functools.partial(_run_nnsight, remote=remote)
    order = sorted(range(len(prompts)), key=lambda i: int(lengths[i]))  # similar lengths share a batch
    chunks: dict[str, list[Tensor]] = {s.name: [] for s in parsed}
    from tqdm.auto import tqdm

    bar = tqdm(total=len(prompts), desc=f"capture {handle.name}", unit="prompt", disable=not progress)
    with torch.no_grad():
        for idx in _batches(order, batch_size):
            batch_len = lengths[idx]
            batch_ids = ids[idx, : int(batch_len.max())].to(handle.device)
            raw = run(handle, batch_ids, parsed, truncate)
            for s in parsed:
                x = _finish(s, raw[s.name], handle).detach().to("cpu", dtype)
                if mode == "last":
                    x = x[torch.arange(len(idx)), batch_len - 1]
                else:
                    pos = torch.arange(x.shape[1])[None, :] >= batch_len[:, None]
                    x = x.masked_fill(pos.view(*pos.shape, *([1] * (x.dim() - 2))), 0.0)
                    x = torch.nn.functional.pad(x, (0, 0) * (x.dim() - 2) + (0, ids.shape[1] - x.shape[1]))
                chunks[s.name].append(x)
            bar.update(len(idx))
    bar.close()
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    acts = {name: torch.cat(parts)[inverse].contiguous() for name, parts in chunks.items()}
    for name, x in acts.items():
        if not torch.isfinite(x).all():
            raise InputError(
                f"Site {name}: the model produced NaN/inf activations (check dtype and weights)."
            )
    if store is not None and key is not None:
        store.save(
            key,
            acts,
            lengths,
            meta={"model": handle.name, "mode": mode, "n_prompts": len(prompts), "sites": ",".join(acts)},
        )
    return Activations(acts, lengths, list(prompts), mode, handle.name, tokens=ids)
