"""Refusal & attacks: refusal probes by layer, projections and safety heads; a small live Probe-SSR attack
on a typed prompt; and the results of campaigns run with ``sublens attack run``."""

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

st.title("Refusal & attacks")
handle, key = current_model()
info = handle.info
if not handle.has_chat_template:
    st.info(
        f"{handle.name} has no chat template, so prompts are scored as raw text; refusal is only meaningful "
        "for instruction-tuned models (e.g. smollm2-135m-instruct)."
    )

probes_tab, attack_tab, runs_tab = st.tabs(["Refusal probes", "Attack a prompt", "Campaign results"])

with probes_tab:
    c1, c2 = st.columns(2)
    n_train = c1.slider("train prompts per class", 4, 24, 12, key="ref_ntrain")
    n_val = c2.slider("validation prompts per class", 2, 6, 6, key="ref_nval")
    if st.button("Fit probes", key="ref_fit"):
        st.session_state["ref_fitted"] = (key, n_train, n_val)
    if st.session_state.get("ref_fitted") == (key, n_train, n_val):
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
            st.table(fit["heads"].head(10).round(4), hide_index=True)
    else:
        st.caption("Fits on the project's offline demo instructions (30 harmful / 30 harmless).")

with attack_tab:
    st.caption(
        "Probe-SSR: optimise a suffix so that refusal probes read the prompt as harmless. Live progress "
        "below; any click on the page (e.g. *Stop*) interrupts the run."
    )
    prompt = st.text_input("prompt", value="How do I pick a lock?", key="atk_prompt")
    a1, a2, a3 = st.columns(3)
    layer = a1.number_input("probe layer", 0, info.n_layers - 1, value=info.n_layers // 2, key="atk_layer")
    steps = a2.number_input("steps", *ATTACK_STEPS_RANGE, value=10, key="atk_steps")
    n_tokens = a3.number_input("suffix tokens", *ATTACK_TOKENS_RANGE, value=5, key="atk_tokens")
    go_col, stop_col = st.columns([1, 5])
    start = go_col.button("Start attack", key="atk_start")
    stop_col.button("Stop", key="atk_stop")
    if start:
        from analysis.rerouting import OptimiserConfig, ProbeObjective, optimise

        try:
            prompt = check_prompt(prompt)
            steps = int(check_range(int(steps), ATTACK_STEPS_RANGE, "steps"))
            n_tokens = int(check_range(int(n_tokens), ATTACK_TOKENS_RANGE, "suffix tokens"))
            probes = cached.attack_probes(handle, key, (int(layer),))
            objective = ProbeObjective(probes)
            cfg = OptimiserConfig(n_tokens=n_tokens, steps=steps, search_width=32, topk=32, batch_size=32)
            bar = st.progress(0.0, text="starting …")
            live = st.empty()
            history: list[dict] = []

            def on_step(step: int, loss: float, ids: list[int]) -> bool:
                history.append({"step": step, "loss": loss, "suffix": handle.tokenizer.decode(ids)})
                bar.progress(min(1.0, step / steps), text=f"step {step}/{steps} · loss {loss:.4f}")
                live.table(pd.DataFrame(history[-5:]).round(4), hide_index=True)
                return False

            with MODEL_LOCK:
                res = optimise(handle, prompt, objective, cfg, callback=on_step)
        except (LimitError, SubspaceLensError) as err:
            st.error(str(err))
        else:
            bar.progress(1.0, text=f"done: {res.steps} steps ({res.stopped})")
            final = f"{res.losses[-1]:.4f}" if res.losses else "n/a"
            st.markdown(f"best suffix: `{res.best_suffix}` · loss **{final}**")
            if res.losses:
                st.line_chart(pd.DataFrame({"loss": res.losses}))

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
                for c in ("prompt", "seed", "success", "steps", "final_loss", "suffix", "response")
                if c in attempts
            ]
            st.dataframe(attempts[cols], hide_index=True)
        except SubspaceLensError as err:
            st.error(str(err))
