"""Rank-1 OV (and QK) component edits applied to a model's weights in place, reversibly, and saved as specs.

Rescaling component ``i`` of head ``(layer, head)`` by ``α`` (``α = 0`` removes it) changes that head's
output weights (row-vector convention, ``W_O^h: [d_head, d_model]``)::

    W_O^h ← W_O^h + (α − 1) (W_O^h v_i) v_iᵀ

where ``v_i`` (unit, in ``d_model``: the *write* side) is the ``i``-th right singular vector of
``W_OV^h = W_V^h W_O^h`` from :func:`probes.weights.head_weights` (LayerNorm-folded by default, as the
channel scores use). Since the ``v_j`` are orthonormal this multiplies ``s_i`` by ``α`` and leaves the
other components alone; equivalently every per-position head output ``y = z W_O^h`` becomes
``y + (α − 1)(y·v_i) v_i`` (``α = 0``: ``y`` projected off ``v_i``). The edit touches only the columns of
the HF ``o_proj`` weight (rows of GPT-2's ``c_proj`` Conv1D) that belong to that head, under
``torch.no_grad``; the original values are kept and copied back bit for bit on undo.

**QK components** (``kind="qk"``): with the head's static ``W_QK^h = W_Q^h W_Kᵀ = Σ_i s_i a_i b_iᵀ``
(raw weights, i.e. acting on the query projection's input, the norm's output; GQA: the head's KV
group), rescaling component ``i`` by ``α`` edits the query weights ``W_Q^h ← (I + (α − 1) a_i a_iᵀ) W_Q^h``:
the head's query reads its input with the part along ``a_i`` scaled by ``α`` (so ``s_i`` becomes
``α s_i``; with rotary embeddings this holds for the static offset-0 form, and the edit stays an exact
weight edit). In the ``[d_head, d_model]`` layout ``W = W_Q^hᵀ`` it is the same update as the OV one,
``W ← W + (α − 1)(W a_i) a_iᵀ``, on the head's rows of ``q_proj`` (columns of GPT-2's ``c_attn``).
``fold_ln``/``center_writing`` only concern OV edits.

An :class:`EditSpec` records the model (name, pack SHA-256, a sampled weights fingerprint, shapes), the
edits and the exact ``v`` vectors, so a saved edit re-applies identically even where a new SVD would
differ in the last bits. Files: ``<stem>.json`` (readable) + ``<stem>.safetensors`` (the vectors).

>>> from probes.testing import tiny_handle
>>> from probes.weights import raw_attention_weights
>>> h = tiny_handle()
>>> before = raw_attention_weights(h, 1).W_O
>>> spec = EditSpec.build(h, [(1, 2, 0, 0.0)])  # remove the top component of head 1.2
>>> with spec.apply(h):
...     bool(torch.equal(raw_attention_weights(h, 1).W_O, before))
False
>>> bool(torch.equal(raw_attention_weights(h, 1).W_O, before))  # restored exactly
True
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from probes.architecture import attention, decoder_layers, input_norm, out_proj, query_proj, unwrap
from probes.errors import InputError
from probes.handle import ModelHandle
from probes.weights import head_ov_svd, head_qk_read

__all__ = [
    "MAX_SAFE_ALPHA",
    "AppliedEdits",
    "ComponentEdit",
    "EditSpec",
    "LargeAlphaWarning",
    "apply_edits",
    "rescale_components",
    "weights_fingerprint",
]

SPEC_VERSION = 1
_SAMPLES = 4096

MAX_SAFE_ALPHA = 100.0
"""Scales with ``|alpha|`` above this warn (:class:`LargeAlphaWarning`). Ablation and amplification
studies use ``alpha`` in about [-10, 10]; at ``|alpha| > 100`` the edited component outweighs the rest of
the head by two orders of magnitude and the model's outputs are mostly that one direction, which is
almost always a typo (``1e6`` for ``1.0``) rather than an experiment."""

_EDIT_FIELDS = ("layer", "head", "component", "alpha")
_KINDS = ("ov", "qk")  # which circuit an edit rescales a component of (module docstring)


class LargeAlphaWarning(UserWarning):
    """An edit scales a component by more than :data:`MAX_SAFE_ALPHA` in magnitude."""


def weights_fingerprint(handle: ModelHandle) -> str:
    """SHA-256 over shapes and a strided sample of weights that component edits never change.

    Covers the input embedding and every layer's attention input norm weight and query/key/value
    projection weights (sampled values as float32), not ``W_O``, so a model keeps its fingerprint while
    edits are applied. It is a sampled identity check (same weights ⇒ same fingerprint; different
    checkpoints differ in practice), independent of TransformerBridge wrapping. The dtype matters: bf16
    and fp32 copies of one checkpoint differ.

    >>> from probes.testing import tiny_handle
    >>> weights_fingerprint(tiny_handle(0)) == weights_fingerprint(tiny_handle(0))
    True
    >>> weights_fingerprint(tiny_handle(0)) == weights_fingerprint(tiny_handle(1))
    False
    """
    digest = hashlib.sha256()
    info = handle.info
    digest.update(
        json.dumps([info.n_layers, info.n_heads, info.n_kv_heads, info.d_model, info.d_head]).encode()
    )

    def add(t: Tensor) -> None:
        flat = t.detach().reshape(-1)
        n, k = flat.numel(), min(_SAMPLES, flat.numel())
        idx = torch.arange(k, device=flat.device) * (n - 1) // max(k - 1, 1)  # integer maths: exact ends
        digest.update(str(tuple(t.shape)).encode())
        digest.update(flat[idx].to("cpu", torch.float32).numpy().tobytes())

    add(unwrap(handle.hf.get_input_embeddings()).weight)
    for block in decoder_layers(handle.hf):
        norm, attn = input_norm(block), attention(block)
        if getattr(norm, "weight", None) is not None:
            add(norm.weight)
        for name in ("q_proj", "k_proj", "v_proj", "c_attn"):
            if hasattr(attn, name):
                add(unwrap(getattr(attn, name)).weight)
    return digest.hexdigest()


@dataclass(frozen=True)
class ComponentEdit:
    """Rescale OV (or QK) SVD component ``component`` (0 = largest singular value) of head ``(layer, head)``."""

    layer: int
    head: int
    component: int
    alpha: float  # new s_i = alpha * s_i (0 removes the component, 1 is a no-op, -1 flips it)
    kind: str = "ov"  # "ov": the head's output weights; "qk": its query weights (module docstring)


def _as_edit(e) -> ComponentEdit:
    if isinstance(e, ComponentEdit):
        return e
    try:
        layer, head, component, alpha, *kind = e
        if len(kind) > 1:
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(
            f"Each edit must be (layer, head, component, alpha), the same with a kind ('ov' or 'qk') "
            f"or a ComponentEdit, got {e!r}."
        ) from None
    return ComponentEdit(layer, head, component, alpha, *kind)


def _check_position(value: object, size: int, field: str, unit: str) -> int:
    """``value`` if it is an integer in ``0..size-1``; negative values are refused, never wrapped."""
    if not isinstance(value, int | np.integer) or isinstance(value, bool):
        raise InputError(f"{field} must be an integer 0..{size - 1}, got {value!r}.")
    if not 0 <= value < size:
        raise InputError(
            f"{field} {value} is out of range: this model has {size} {unit} ({field}s 0..{size - 1}); "
            f"negative values are not counted from the end in edits. Use a value in 0..{size - 1}."
        )
    return int(value)


def _check_alpha(alpha: object, warn: bool) -> float:
    """A finite number; with ``warn``, ``|alpha| > MAX_SAFE_ALPHA`` warns (:class:`LargeAlphaWarning`)."""
    if isinstance(alpha, bool) or not isinstance(alpha, int | float | np.floating | np.integer):
        raise InputError(f"alpha must be a finite number (0 removes the component), got {alpha!r}.")
    if not math.isfinite(alpha):
        raise InputError(f"alpha must be a finite number (0 removes the component), got {alpha!r}.")
    if warn and abs(alpha) > MAX_SAFE_ALPHA:
        warnings.warn(
            f"alpha = {alpha:g} scales the component by more than {MAX_SAFE_ALPHA:g}x: the head's output is "
            f"then dominated by that one direction. Check for a typo (alpha 1 leaves it unchanged, 0 removes "
            f"it, 2 doubles it); typical values lie in -10..10.",
            LargeAlphaWarning,
            stacklevel=2,
        )
    return float(alpha)


def _check_edit(
    e: ComponentEdit, n_layers: int, n_heads: int, d_head: int, warn: bool = False
) -> ComponentEdit:
    """``e`` with every field checked against the model's shape (``warn``: large alpha warns)."""
    layer = _check_position(e.layer, n_layers, "layer", "layers")
    head = _check_position(e.head, n_heads, "head", "heads per layer")
    if (
        not isinstance(e.component, int | np.integer)
        or isinstance(e.component, bool)
        or not 0 <= e.component < d_head
    ):
        raise InputError(
            f"component {e.component!r} is out of range: each head's OV circuit has d_head={d_head} "
            f"components (0..{d_head - 1}, 0 = largest singular value)."
        )
    if e.kind not in _KINDS:
        raise InputError(f"kind must be 'ov' (output weights) or 'qk' (query weights), got {e.kind!r}.")
    return ComponentEdit(layer, head, int(e.component), _check_alpha(e.alpha, warn), e.kind)


def _edit_from_json(i: int, entry: object, where: str) -> ComponentEdit:
    """``edits[i]`` of a spec file as a :class:`ComponentEdit` (the four fields, ``kind`` optional)."""
    if not isinstance(entry, dict):
        raise InputError(
            f"{where}: edits[{i}] must be an object with fields {', '.join(_EDIT_FIELDS)}, got {entry!r}."
        )
    unknown = [k for k in entry if k not in (*_EDIT_FIELDS, "kind")]
    if unknown:
        raise InputError(
            f"{where}: unknown field {unknown[0]!r} in edits[{i}]; an edit has exactly the fields "
            f"{', '.join(_EDIT_FIELDS)} (and optionally kind). Remove it (or rebuild the spec with EditSpec.build)."
        )
    missing = [k for k in _EDIT_FIELDS if k not in entry]
    if missing:
        raise InputError(
            f"{where}: edits[{i}] is missing the field {missing[0]!r}; an edit has the fields "
            f"{', '.join(_EDIT_FIELDS)}."
        )
    return ComponentEdit(**entry)


@dataclass(frozen=True, eq=False)
class EditSpec:
    """A reproducible set of component rescalings for one specific model (see module docstring)."""

    model: str  # handle.name of the model the spec was built on
    pack_sha256: str | None  # the model pack's pinned hash (None for local/in-memory models)
    weights_fingerprint: str  # weights_fingerprint() of the unedited model
    n_layers: int
    n_heads: int
    d_model: int
    d_head: int
    edits: tuple[ComponentEdit, ...]
    vectors: Float[Tensor, "n_edits d_model"]  # the unit write direction v_i of each edit
    fold_ln: bool = True  # how v_i was derived: head_weights(fold_ln, center_writing)
    center_writing: bool = False
    singular_values: tuple[float, ...] = ()  # s_i of each edited component at build time (for reports)
    note: str = ""
    version: int = field(default=SPEC_VERSION)

    def __post_init__(self) -> None:
        for name in ("n_layers", "n_heads", "d_model", "d_head"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer (the model's shape), got {value!r}.")
        edits = []
        for i, e in enumerate(self.edits):
            try:
                edits.append(_check_edit(_as_edit(e), self.n_layers, self.n_heads, self.d_head, warn=True))
            except InputError as err:
                raise InputError(f"edits[{i}]: {err}") from None
        edits = tuple(edits)
        object.__setattr__(self, "edits", edits)
        v = self.vectors
        if not isinstance(v, Tensor) or v.ndim != 2 or v.shape != (len(edits), self.d_model):
            raise InputError(
                f"vectors must be a tensor [n_edits={len(edits)}, d_model={self.d_model}], got "
                f"{tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__}."
            )
        v = v.detach().to("cpu", torch.float32)
        if not torch.isfinite(v).all() or (len(edits) and (v.norm(dim=-1) - 1).abs().max() > 1e-4):
            raise InputError("every edit vector must be finite and unit-norm (|v| = 1 ± 1e-4).")
        object.__setattr__(self, "vectors", v.contiguous())

    # -------------------------------------------------------------------------------- construction
    @classmethod
    def build(
        cls,
        handle: ModelHandle,
        edits: Iterable[ComponentEdit | tuple[int, int, int, float]],
        *,
        fold_ln: bool = True,
        center_writing: bool = False,
        note: str = "",
    ) -> EditSpec:
        """Resolve each ``(layer, head, component, alpha)`` to its ``v_i`` on ``handle``'s current weights.

        >>> from probes.testing import tiny_handle
        >>> spec = EditSpec.build(tiny_handle(), [(0, 1, 3, 0.5)])
        >>> spec.vectors.shape, spec.edits[0].alpha
        (torch.Size([1, 32]), 0.5)
        """
        info = handle.info
        checked = [_check_edit(_as_edit(e), info.n_layers, info.n_heads, info.d_head) for e in edits]
        if not checked:
            raise InputError("No edits given: pass a list of (layer, head, component, alpha).")

        def directions(kind: str, layer: int, head: int) -> tuple[Tensor, Tensor]:
            if kind == "qk":
                return head_qk_read(handle, layer, head)
            svd = head_ov_svd(handle, layer, head, fold_ln, center_writing)
            return svd.V, svd.S

        svds = {(e.kind, e.layer, e.head): directions(e.kind, e.layer, e.head) for e in checked}
        vectors = torch.stack([svds[e.kind, e.layer, e.head][0][:, e.component] for e in checked]).float()
        svals = tuple(float(svds[e.kind, e.layer, e.head][1][e.component]) for e in checked)
        return cls(
            model=handle.name,
            pack_sha256=handle.pack_sha256,
            weights_fingerprint=weights_fingerprint(handle),
            n_layers=info.n_layers,
            n_heads=info.n_heads,
            d_model=info.d_model,
            d_head=info.d_head,
            edits=tuple(checked),
            vectors=vectors.cpu(),
            fold_ln=fold_ln,
            center_writing=center_writing,
            singular_values=svals,
            note=note,
        )

    # -------------------------------------------------------------------------------- checks
    def check(self, handle: ModelHandle) -> None:
        """Raise :class:`InputError` unless ``handle`` is the model this spec was built for."""
        info = handle.info
        if info.d_model != self.d_model:
            raise InputError(
                f"EditSpec vectors have d_model={self.d_model} but model {handle.name!r} has "
                f"d_model={info.d_model}; load {self.model!r} or rebuild the spec on this model."
            )
        shape = (info.n_layers, info.n_heads, info.d_head)
        if shape != (self.n_layers, self.n_heads, self.d_head):
            raise InputError(
                f"EditSpec was built for (layers, heads, d_head)={(self.n_layers, self.n_heads, self.d_head)}, "
                f"model {handle.name!r} has {shape}; load {self.model!r} or rebuild the spec."
            )
        if handle.name != self.model:
            raise InputError(
                f"EditSpec was built for model {self.model!r}, not {handle.name!r}; load that model "
                "(e.g. load_model(spec.model)) or rebuild the spec with EditSpec.build on this one."
            )
        if self.pack_sha256 and handle.pack_sha256:
            if self.pack_sha256 != handle.pack_sha256:
                raise InputError(
                    f"EditSpec pack sha256 {self.pack_sha256[:12]}… != loaded pack {handle.pack_sha256[:12]}… "
                    f"for {self.model!r}: the weights differ; rebuild the spec on the loaded model."
                )
            return
        got = weights_fingerprint(handle)
        if got != self.weights_fingerprint:
            raise InputError(
                f"EditSpec weights fingerprint {self.weights_fingerprint[:12]}… != {got[:12]}… for model "
                f"{handle.name!r}: same name, different weights (other checkpoint or dtype?); rebuild the "
                "spec with EditSpec.build on this model."
            )

    def apply(self, handle: ModelHandle) -> AppliedEdits:
        """Check and apply to ``handle`` in place; undo with ``.undo()`` or use as a context manager."""
        return apply_edits(handle, self)

    # -------------------------------------------------------------------------------- files
    def to_json_dict(self) -> dict:
        return {
            "version": self.version,
            "model": self.model,
            "pack_sha256": self.pack_sha256,
            "weights_fingerprint": self.weights_fingerprint,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "d_model": self.d_model,
            "d_head": self.d_head,
            "fold_ln": self.fold_ln,
            "center_writing": self.center_writing,
            "edits": [
                {"layer": e.layer, "head": e.head, "component": e.component, "alpha": e.alpha}
                | ({"kind": e.kind} if e.kind != "ov" else {})
                for e in self.edits
            ],
            "singular_values": list(self.singular_values),
            "note": self.note,
        }

    def save(self, path: str | Path) -> Path:
        """Write ``<stem>.json`` and ``<stem>.safetensors``; return the JSON path."""
        from safetensors.torch import save_file

        json_path = _json_path(path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        st_path = json_path.with_suffix(".safetensors")
        save_file({"vectors": self.vectors.contiguous()}, str(st_path))
        meta = self.to_json_dict()
        meta["vectors_file"] = st_path.name
        meta["vectors_sha256"] = hashlib.sha256(st_path.read_bytes()).hexdigest()
        json_path.write_text(json.dumps(meta, indent=2) + "\n")
        return json_path

    @classmethod
    def load(cls, path: str | Path) -> EditSpec:
        """Read a spec written by :meth:`save` (the ``.json`` path or the common stem)."""
        from safetensors.torch import load_file

        json_path = _json_path(path)
        if not json_path.is_file():
            raise InputError(f"No edit spec at {json_path}: pass the .json written by EditSpec.save.")
        where = f"Edit spec {json_path}"
        try:
            meta = json.loads(json_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{where} is not a valid spec file ({exc}); re-save it.") from None
        if not isinstance(meta, dict):
            raise InputError(f"{where} is not a valid spec file (a JSON object is needed); re-save it.")
        if meta.get("version") != SPEC_VERSION:
            raise InputError(f"{where} has version {meta.get('version')!r}; this build reads {SPEC_VERSION}.")
        _check_spec_fields(meta, where)
        if not isinstance(meta["vectors_file"], str):
            raise InputError(f"{where}: vectors_file must be a file name, got {meta['vectors_file']!r}.")
        st_path = json_path.parent / meta["vectors_file"]
        if not st_path.is_file():
            raise InputError(f"Edit spec {json_path} refers to {st_path.name}, which is missing.")
        if hashlib.sha256(st_path.read_bytes()).hexdigest() != meta.get("vectors_sha256"):
            raise InputError(f"{st_path} does not match the checksum in {json_path.name}; re-save the spec.")
        edits = tuple(_edit_from_json(i, e, where) for i, e in enumerate(_as_list(meta["edits"], where)))
        try:
            return cls(
                model=meta["model"],
                pack_sha256=meta["pack_sha256"],
                weights_fingerprint=meta["weights_fingerprint"],
                n_layers=meta["n_layers"],
                n_heads=meta["n_heads"],
                d_model=meta["d_model"],
                d_head=meta["d_head"],
                edits=edits,
                vectors=load_file(str(st_path))["vectors"],
                fold_ln=meta["fold_ln"],
                center_writing=meta["center_writing"],
                singular_values=tuple(meta.get("singular_values", ())),
                note=meta.get("note", ""),
            )
        except InputError as err:
            raise InputError(f"{where}: {err}") from None


_SPEC_REQUIRED = (
    "model",
    "pack_sha256",
    "weights_fingerprint",
    "n_layers",
    "n_heads",
    "d_model",
    "d_head",
    "fold_ln",
    "center_writing",
    "edits",
    "vectors_file",
    "vectors_sha256",
)
_SPEC_OPTIONAL = ("version", "singular_values", "note")


def _check_spec_fields(meta: dict, where: str) -> None:
    """Refuse unknown and missing top-level fields, naming them."""
    unknown = [k for k in meta if k not in _SPEC_REQUIRED + _SPEC_OPTIONAL]
    if unknown:
        raise InputError(
            f"{where}: unknown field {unknown[0]!r}; a spec holds {', '.join(_SPEC_REQUIRED + _SPEC_OPTIONAL)}. "
            "Remove it, or re-save the spec with EditSpec.save."
        )
    missing = [k for k in _SPEC_REQUIRED if k not in meta]
    if missing:
        raise InputError(f"{where} is missing the field {missing[0]!r}; re-save it with EditSpec.save.")


def _as_list(value: object, where: str) -> list:
    if not isinstance(value, list) or not value:
        raise InputError(f"{where}: 'edits' must be a non-empty list of edits, got {value!r}.")
    return value


def _json_path(path: str | Path) -> Path:
    p = Path(path)
    return p if p.suffix == ".json" else p.with_name(p.name + ".json") if p.suffix else p.with_suffix(".json")


class AppliedEdits:
    """Edits currently applied to a model; ``undo()`` (or leaving the ``with`` block) restores it exactly."""

    def __init__(self, handle: ModelHandle, spec: EditSpec):
        self.handle = handle
        self.spec = spec
        self._saved: dict[tuple[int, int], Tensor] = {}
        self.active = False
        self._apply()

    def _head_slice(self, kind: str, layer: int, head: int) -> tuple[torch.nn.Parameter, bool, slice]:
        """The weight holding the head's ``[d_head, d_model]`` block, whether it is stored transposed
        (as columns), and its slice."""
        block = decoder_layers(self.handle.hf)[layer]
        proj = out_proj(block) if kind == "ov" else query_proj(block)
        d_head = self.handle.info.d_head
        linear = isinstance(proj, torch.nn.Linear)  # o_proj [d_model, H*d_head], q_proj [H*d_head, d_model]
        cols = linear if kind == "ov" else not linear  # Conv1D c_proj [H*d_head, d], c_attn [d, 3d]
        return proj.weight, cols, slice(head * d_head, (head + 1) * d_head)

    def _apply(self) -> None:
        spec = self.spec
        spec.check(self.handle)
        with torch.no_grad():
            for e, v in zip(spec.edits, spec.vectors, strict=True):
                weight, cols, sl = self._head_slice(e.kind, e.layer, e.head)
                block = weight[:, sl] if cols else weight[sl, :]
                self._saved.setdefault((e.kind, e.layer, e.head), block.detach().clone())
                work = torch.float64 if weight.dtype == torch.float64 else torch.float32
                W = (block.T if cols else block).to(work)  # [d_head, d_model]: W_O, or W_Qᵀ
                vv = v.to(weight.device, work)
                W = W + (e.alpha - 1.0) * (W @ vv)[:, None] * vv[None, :]
                new = (W.T if cols else W).to(weight.dtype)
                if cols:
                    weight[:, sl] = new
                else:
                    weight[sl, :] = new
        self.active = True

    def undo(self) -> None:
        """Copy the original ``o_proj`` values back (bit-exact). A second call does nothing."""
        if not self.active:
            return
        with torch.no_grad():
            for (kind, layer, head), original in self._saved.items():
                weight, cols, sl = self._head_slice(kind, layer, head)
                if cols:
                    weight[:, sl] = original
                else:
                    weight[sl, :] = original
        self._saved.clear()
        self.active = False

    def __enter__(self) -> AppliedEdits:
        return self

    def __exit__(self, *exc) -> None:
        self.undo()

    def __repr__(self) -> str:
        return f"AppliedEdits({self.handle.name!r}, {len(self.spec.edits)} edits, active={self.active})"


def apply_edits(handle: ModelHandle, spec: EditSpec) -> AppliedEdits:
    """Apply ``spec`` to ``handle`` in place (after :meth:`EditSpec.check`); returns the undo handle."""
    if not isinstance(spec, EditSpec):
        raise InputError(
            f"apply_edits needs an EditSpec (EditSpec.build / EditSpec.load), got {type(spec).__name__}."
        )
    return AppliedEdits(handle, spec)


def rescale_components(
    handle: ModelHandle,
    edits: Sequence[ComponentEdit | tuple[int, int, int, float]],
    *,
    fold_ln: bool = True,
    center_writing: bool = False,
) -> AppliedEdits:
    """Build an :class:`EditSpec` on ``handle`` and apply it: ``with rescale_components(h, [(L, H, i, α)]):``.

    >>> from probes.testing import tiny_handle
    >>> h = tiny_handle()
    >>> with rescale_components(h, [(0, 0, 0, 2.0)]) as applied:
    ...     applied.active
    True
    >>> applied.active
    False
    """
    return EditSpec.build(handle, edits, fold_ln=fold_ln, center_writing=center_writing).apply(handle)
