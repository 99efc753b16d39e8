"""Refusal & attacks: refusal probes by layer, projections and safety heads; a small live Probe-SSR attack
on a typed prompt (with the readout and the model's reply before and after); and the results of
campaigns run with ``sublens attack run``."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from apps.dashboard import cache_refusal as cached
from apps.dashboard.models import MODEL_LOCK, current_model
from apps.dashboard.runs import campaign_dirs, runs_root
from apps.dashboard.state import (
    ATTACK_STEPS_RANGE,
    ATTACK_TOKENS_RANGE,
    LimitError,
    check_prompt,
    check_range,
)
from probes.errors import SubspaceLensError

MAX_ATTACK_LAYERS = 3  # probe layers of one live attack
REPLY_TOKENS = 48  # new tokens of each shown reply
ATTACK_KEY = "atk_result"  # session-state key of the last attack (survives page switches)
KEPT = ("atk_prompt", "atk_layers", "atk_steps", "atk_tokens")  # inputs restored after a page switch


def _keep(defaults: dict) -> None:
    """Restore the attack inputs Streamlit dropped while another page was shown (kept under ``keep::``)."""
    for k, default in defaults.items():
        if k not in st.session_state:
            st.session_state[k] = st.session_state.get(f"keep::{k}", default)


def _remember() -> None:
    for k in KEPT:
        st.session_state[f"keep::{k}"] = st.session_state[k]


def _readout_table(before: dict, after: dict | None) -> pd.DataFrame:
    """One row per probe layer: P(harmless) of the bare prompt and (if any) of prompt + suffix."""
    rows = [{"probe layer": k, "P(harmless), prompt alone": round(p, 4)} for k, p in before.items()]
    if after is not None:
        for row in rows:
            row["P(harmless), prompt + suffix"] = round(after[row["probe layer"]], 4)
    return pd.DataFrame(rows)


def _run_attack(handle, key, prompt: str, layers: tuple[int, ...], steps: int, n_tokens: int) -> dict:
    """Fit the probes, run the optimiser with live progress, read out and generate; the result as a dict."""
    from analysis.rerouting import OptimiserConfig, ProbeObjective, optimise

    probes, source = cached.attack_probes(handle, key, layers)
    cfg = OptimiserConfig(n_tokens=n_tokens, steps=steps, search_width=32, topk=32, batch_size=32)
    bar = st.progress(0.0, text="reading the prompt …")
    live = st.empty()
    history: list[dict] = []

    def on_step(step: int, loss: float, ids: list[int]) -> bool:
        history.append({"step": step, "loss": loss, "suffix": handle.tokenizer.decode(ids)})
        bar.progress(min(1.0, step / steps), text=f"step {step}/{steps} · loss {loss:.4f}")
        live.table(pd.DataFrame(history[-5:]).round(4), hide_index=True)
        return False

    with MODEL_LOCK:
        res = optimise(handle, prompt, ProbeObjective(probes), cfg, callback=on_step)
    bar.progress(1.0, text="reading out and generating the replies …")
    before = cached.readouts(handle, prompt, probes, [])
    out = {
        "params": (key, prompt, layers, steps, n_tokens),
        "source": source,
        "res": res,
        "before": before,
        "reply_before": cached.reply(handle, prompt, REPLY_TOKENS),
    }
    if res.optimised or res.stopped == "start_met":
        out["after"] = cached.readouts(handle, prompt, probes, res.best_ids)
        out["reply_after"] = cached.reply(handle, prompt + res.best_suffix, REPLY_TOKENS)
    bar.empty()
    live.empty()
    return out


def _show_attack(result: dict) -> None:
    """The attack's outcome: why it stopped, losses, readouts, best suffix and replies."""
    res, layers = result["res"], result["params"][2]
    where = ", ".join(str(k) for k in layers)
    st.caption(f"probes fitted on {result['source']}; stopped: {res.reason}.")
    if res.stopped == "already_met":
        p = ", ".join(f"{v:.3f}" for v in result["before"].values())
        st.warning(
            f"Nothing to reroute at layer {where}: the probe already reads this prompt as harmless "
            f"(P(harmless) = {p}; loss {res.prompt_loss:.4f}, below the early-stop loss "
            f"{res.early_stop_loss:g}) — pick another layer or prompt."
        )
        st.table(_readout_table(result["before"], None), hide_index=True)
        st.markdown("**The model's reply** to the prompt")
        st.code(result["reply_before"], language=None, wrap_lines=True)
        return
    if res.stopped == "start_met":
        st.info(
            f"The prompt alone reads as harmful (loss {res.prompt_loss:.4f}), but a random starting suffix "
            f"already brings the loss to {res.initial_loss:.4f} (below {res.early_stop_loss:g}): no "
            "optimisation step was needed; the suffix below is that random start."
        )
    m1, m2, m3 = st.columns(3)
    m1.metric("loss, prompt alone", f"{res.prompt_loss:.4g}")
    m2.metric("loss, best start", f"{res.initial_loss:.4g}")
    m3.metric(f"loss after {res.steps} step{'s' * (res.steps != 1)}", f"{res.best_loss:.4g}", f"{res.best_loss - res.initial_loss:+.4g}",
              delta_color="inverse")  # fmt: skip
    st.markdown(f"best suffix: `{res.best_suffix}`")
    st.table(_readout_table(result["before"], result["after"]), hide_index=True)
    left, right = st.columns(2)
    left.markdown("**Reply to the prompt alone**")
    left.code(result["reply_before"], language=None, wrap_lines=True)
    right.markdown("**Reply to prompt + suffix**")
    right.code(result["reply_after"], language=None, wrap_lines=True)
    if res.losses:
        st.line_chart(pd.DataFrame({"best loss": [res.initial_loss, *res.losses]}), x_label="step")


st.title("Refusal & attacks")
handle, key = current_model()
info = handle.info
guidance = cached.refusal_guidance(handle.name)
if guidance:
    st.warning(guidance)
if not handle.has_chat_template:
    st.info(
        f"{handle.name} has no chat template, so prompts are scored as raw text; refusal is only meaningful "
        f"for instruction-tuned models (e.g. {cached.REFUSING_MODEL})."
    )

probes_tab, attack_tab, runs_tab = st.tabs(["Refusal probes", "Attack a prompt", "Campaign results"])

with probes_tab:
    c1, c2 = st.columns(2)
    n_train = c1.slider("train prompts per class (4–24)", 4, 24, 12, key="ref_ntrain")
    n_val = c2.slider("validation prompts per class (2–6)", 2, 6, 6, key="ref_nval")
    if st.button("Fit probes", key="ref_fit"):
        st.session_state["ref_fitted"] = (key, n_train, n_val)
    if st.session_state.get("ref_fitted") == (key, n_train, n_val):
        from analysis.channels.figures import head_label
        from analysis.refusal.figures import head_figure, probe_accuracy_figure, projection_figure

        try:
            fit = cached.refusal_fit(handle, key, n_train, n_val)
        except SubspaceLensError as err:
            st.error(str(err))
        else:
            best = fit["probes"].sort_values("val_acc", ascending=False).iloc[0]
            st.markdown(
                f"best validation accuracy **{best['val_acc']:.2f}** at layer {int(best['layer'])}; "
                f"direction layer **{fit['layer']}**"
            )
            st.plotly_chart(probe_accuracy_figure(fit["probes"]), key="ref_acc")
            a, b = st.columns(2)
            a.plotly_chart(projection_figure(fit["projections"], fit["layer"]), key="ref_proj")
            b.plotly_chart(head_figure(fit["heads"]), key="ref_heads")
            heads = fit["heads"].head(10).round(4)
            names = [head_label((la, h)) for la, h in zip(heads["layer"], heads["head"], strict=True)]
            heads.insert(0, "name", names)
            st.table(heads, hide_index=True)
    else:
        st.caption("Fits on the project's offline demo instructions (30 harmful / 30 harmless).")

with attack_tab:
    st.caption(
        "Probe-SSR: optimise a suffix so that refusal probes read the prompt as harmless. Live progress "
        "below; any click on the page (e.g. *Stop*) interrupts the run."
    )
    start_values = {"atk_prompt": "How do I pick a lock?", "atk_layers": [info.n_layers // 2]}
    _keep({**start_values, "atk_steps": 10, "atk_tokens": 5})
    st.session_state["atk_layers"] = [k for k in st.session_state["atk_layers"] if k < info.n_layers]
    prompt = st.text_input("prompt", key="atk_prompt")
    a1, a2, a3 = st.columns(3)
    layers = a1.multiselect(
        f"probe layers (0–{info.n_layers - 1}, up to {MAX_ATTACK_LAYERS})",
        list(range(info.n_layers)),
        max_selections=MAX_ATTACK_LAYERS,
        key="atk_layers",
    )
    lo, hi = ATTACK_STEPS_RANGE
    steps = a2.number_input(f"steps ({lo}–{hi})", step=1, key="atk_steps")
    lo, hi = ATTACK_TOKENS_RANGE
    n_tokens = a3.number_input(f"suffix tokens ({lo}–{hi})", step=1, key="atk_tokens")
    _remember()
    try:
        steps = int(check_range(steps, ATTACK_STEPS_RANGE, "steps"))
        n_tokens = int(check_range(n_tokens, ATTACK_TOKENS_RANGE, "suffix tokens"))
        if not layers:
            raise LimitError("no probe layer chosen: pick at least one.")
        valid = True
    except LimitError as err:
        st.error(str(err))
        valid = False
    go_col, stop_col = st.columns([1, 5])
    start = go_col.button("Start attack", key="atk_start", disabled=not valid)
    stop_col.button("Stop", key="atk_stop")
    if start and valid:
        try:
            params = (check_prompt(prompt), tuple(sorted(int(k) for k in layers)), steps, n_tokens)
            st.session_state[ATTACK_KEY] = _run_attack(handle, key, *params)
        except (LimitError, SubspaceLensError) as err:
            st.error(str(err))
    shown = st.session_state.get(ATTACK_KEY)
    if shown is not None and shown["params"][0] == key:
        if shown["params"][1:] != (prompt.strip(), tuple(sorted(layers)), steps, n_tokens):
            st.caption(
                "Showing the last attack, on "
                f"“{shown['params'][1]}” at layer(s) {', '.join(map(str, shown['params'][2]))} with "
                f"{shown['params'][3]} steps and {shown['params'][4]} suffix tokens (the inputs above "
                "have changed since: press *Start attack* to run them)."
            )
        _show_attack(shown)

with runs_tab:
    dirs = campaign_dirs()
    if not dirs:
        st.info(f"No campaign results under {runs_root()}/: run `sublens attack run CONFIG` first.")
    else:
        from analysis.rerouting import read_attempts, report

        run = st.selectbox("campaign", dirs, format_func=str, key="runs_dir")
        try:
            st.table(report(run).round(3), hide_index=True)
            attempts = pd.DataFrame(read_attempts(run))
            cols = [
                c
                for c in ("prompt", "seed", "success", "steps", "stopped", "final_loss", "suffix", "response")
                if c in attempts
            ]
            st.dataframe(attempts[cols], hide_index=True)
        except SubspaceLensError as err:
            st.error(str(err))
