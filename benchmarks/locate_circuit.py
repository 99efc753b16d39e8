"""Locate IOI name-mover and S-inhibition heads in a packaged model and check them against weight channels.

    python benchmarks/locate_circuit.py [--model smollm2-135m-instruct] [--n-prompts 50] [--out runs]

Writes into ``<out>/locate_circuit/<stamp>-<hash>/``: ``dla.parquet``, ``attention.parquet``,
``movers.parquet``, ``ablation.parquet``, ``inhibition.parquet``, ``sender_ranks.parquet``,
``component_vs_head.parquet``, ``summary.json`` and ``run.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--n-prompts", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-movers", type=int, default=3)
    p.add_argument("--n-inhibitors", type=int, default=4, help="inhibition heads kept per mover")
    p.add_argument("--ablate-top", type=int, default=12, help="heads (by |DLA|) given exact ablation runs")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()

    from analysis.channels import ScanConfig, scan_channels
    from analysis.circuits import (
        abc_prompts,
        component_vs_head,
        direct_logit_attribution,
        head_ablation_effects,
        head_attention,
        inhibition_scores,
        ioi_batch,
        mover_heads,
        run_clean,
        sender_ranks,
    )
    from analysis.tasks.ioi import ioi_prompts
    from probes.loading import load_model
    from probes.runs import new_run_dir, write_sidecar, write_table
    from probes.weights import head_ov_svd, head_weights

    config = vars(args)
    run_dir = new_run_dir("locate_circuit", config, root=args.out)
    log = lambda msg: print(f"[{time.time() - t0:6.1f}s] {msg}", flush=True)  # noqa: E731
    handle = load_model(args.model, backend="hf", progress=False)
    prompts = ioi_prompts(handle.tokenizer, n_prompts=args.n_prompts, seed=args.seed)
    batch = ioi_batch(handle, prompts)
    # ABC prompts hold S once, so positions come from the clean batch
    abc = abc_prompts(prompts, handle.tokenizer, seed=args.seed)
    abc_ids, abc_len = handle.tokenize(list(abc["prompt"]), chat=False)
    if abc_ids.shape != batch.ids.shape or not torch.equal(abc_len, batch.lengths):
        raise SystemExit("ABC prompts do not tokenise like the clean ones")
    corrupt = replace(batch, prompts=abc, ids=abc_ids, lengths=abc_len)

    run = run_clean(handle, batch)
    log(f"clean run: mean logit diff {float(run.logit_diff.mean()):.3f}")
    dla = direct_logit_attribution(handle, run, batch)
    attn = head_attention(run, batch)
    movers = mover_heads(attn, dla, top_k=args.n_movers)
    mover_list = [(int(r.layer), int(r.head)) for r in movers.itertuples()]
    log(f"movers: {mover_list}")
    key_layers = sorted({L for L, _ in mover_list})
    run = run_clean(handle, batch, key_layers=key_layers)
    abc_run = run_clean(handle, corrupt, key_layers=key_layers)
    log(f"ABC run: mean logit diff {float(abc_run.logit_diff.mean()):.3f}")

    inhib = []
    for m in mover_list:
        inhib.append(inhibition_scores(handle, run, batch, m))
        inhib.append(inhibition_scores(handle, run, batch, m, corrupted_run=abc_run))
    inhib = torch_free_concat(inhib)
    top_inhib = {}
    for m in mover_list:
        sel = inhib[
            (inhib.receiver_layer == m[0]) & (inhib.receiver_head == m[1]) & (inhib.reference == "abc")
        ]
        top_inhib[m] = [
            (int(a), int(b)) for a, b in sel.head(args.n_inhibitors)[["sender_layer", "sender_head"]].values
        ]
    log(f"inhibition heads (ABC path patching into mover queries): {top_inhib}")

    heads = dla[dla.kind == "head"].assign(a=lambda d: d.dla_mean.abs()).sort_values("a", ascending=False)
    subset = [(int(L), int(h)) for L, h in heads.head(args.ablate_top)[["layer", "head"]].values]
    subset = list(dict.fromkeys(subset + [s for ss in top_inhib.values() for s in ss]))
    ablation = torch_free_concat(
        [
            head_ablation_effects(handle, batch, run, subset),
            head_ablation_effects(handle, batch, run, subset, corrupt),
        ]
    )
    log(f"ablation of {len(subset)} heads done")

    weights = head_weights(handle, fold_ln=True, center_writing=False)
    scan = scan_channels(weights, ScanConfig(modes="Q"))
    log("Q-mode channel scan done")
    ranks, cvh, channels = [], [], []
    for m in mover_list:
        rk = sender_ranks(scan, m).assign(receiver=f"{m[0]}.{m[1]}")
        ranks.append(rk)
        for s in top_inhib[m]:
            row = rk[(rk.sender_layer == s[0]) & (rk.sender_head == s[1])].iloc[0]
            eff = inhib[
                (inhib.receiver_layer == m[0])
                & (inhib.receiver_head == m[1])
                & (inhib.reference == "abc")
                & (inhib.sender_layer == s[0])
                & (inhib.sender_head == s[1])
            ]["effect"].iloc[0]
            channels.append(
                {
                    "receiver": f"{m[0]}.{m[1]}",
                    "sender": f"{s[0]}.{s[1]}",
                    "inhibition_effect_abc": float(eff),
                    "sender_rank_by_component_z": int(row["rank"]),
                    "n_senders": len(rk),
                    "top_component": int(row.component),
                    "top_component_z": float(row.z),
                    "score": float(row.score),
                }
            )
            v = head_ov_svd(handle, s[0], s[1], fold_ln=True, center_writing=False).V[:, int(row.component)]
            cvh.append(component_vs_head(handle, run, batch, s, m, v.float()))
    ranks, cvh = torch_free_concat(ranks), torch_free_concat(cvh)
    log("component vs head done")

    for name, df in [
        ("dla", dla),
        ("attention", attn),
        ("movers", movers),
        ("ablation", ablation),
        ("inhibition", inhib),
        ("sender_ranks", ranks),
        ("component_vs_head", cvh),
        ("channels", _df(channels)),
    ]:
        write_table(df, run_dir / f"{name}.parquet")
    main_pair = max(channels, key=lambda c: c["inhibition_effect_abc"]) if channels else None
    summary = {
        "model": args.model,
        "n_prompts": args.n_prompts,
        "logit_diff_clean": float(run.logit_diff.mean()),
        "accuracy_clean": float((run.logit_diff > 0).float().mean()),
        "logit_diff_abc": float(abc_run.logit_diff.mean()),
        "dla_check": dla.attrs,
        "movers": movers.to_dict("records"),
        "inhibition_heads": {f"{m[0]}.{m[1]}": [f"{a}.{b}" for a, b in v] for m, v in top_inhib.items()},
        "channels": channels,
        "main_channel": main_pair,
        "component_vs_head": cvh.to_dict("records"),
        "seconds": time.time() - t0,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    write_sidecar(
        run_dir, command="locate_circuit", config=config, model=args.model, seed=args.seed, started=t0
    )
    log(f"wrote {run_dir}")
    return run_dir


def torch_free_concat(dfs):
    import pandas as pd

    return pd.concat([d for d in dfs if len(d)], ignore_index=True)


def _df(rows):
    import pandas as pd

    return pd.DataFrame(rows)


if __name__ == "__main__":
    main()
