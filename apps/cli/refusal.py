"""``sublens refusal fit MODEL``: refusal probes and directions per layer, ablation/addition checks, heads."""

from __future__ import annotations

import typer
from rich.console import Console

from apps.cli import checks
from apps.cli.tables import print_frame
from probes.errors import InputError

app = typer.Typer(
    help="Refusal subspaces: probes, difference-of-means directions, checks.", no_args_is_help=True
)
console = Console()


@app.command("fit")
def fit(
    model: str = typer.Argument(..., help="packaged model name or local path"),
    n_train: int = typer.Option(100, help="train prompts per class (harmful / harmless)"),
    n_val: int = typer.Option(39, help="validation prompts per class"),
    layer: int = typer.Option(None, help="direction layer (default: best separation in the middle layers)"),
    max_new_tokens: int = typer.Option(24, help="greedy tokens per completion for the refusal matcher"),
    generate: bool = typer.Option(True, help="run the baseline / ablation / addition generation checks"),
    data: str = typer.Option(
        None, help="folder with harmful_train.json etc. (default: ../shared/data/refusal)"
    ),
    seed: int = typer.Option(0, help="probe fitting seed"),
    out: str = typer.Option(None, help="run directory root (default ./runs)"),
) -> None:
    """Fit per-layer refusal probes and directions, check the chosen direction, and save a run."""
    import torch

    from analysis.refusal.pipeline import RefusalConfig, fit_refusal
    from probes.adapters import model_hashes
    from probes.datasets import shared_refusal_split
    from probes.loading import load_model
    from probes.runs import open_run

    checks.at_least(n_train, 2, "--n-train", "train prompts per class")
    checks.at_least(n_val, 1, "--n-val", "validation prompts per class")
    checks.at_least(layer, 0, "--layer")
    checks.at_least(max_new_tokens, 1, "--max-new-tokens")
    checks.at_least(seed, 0, "--seed")
    if data is not None:
        checks.input_folder(data, "--data", "refusal data (harmful_train.json, ...)")
    with checks.as_flags():
        cfg = RefusalConfig(
            n_train=n_train,
            n_val=n_val,
            layer=layer,
            max_new_tokens=max_new_tokens,
            generate=generate,
            seed=seed,
        )
    splits = {
        name: shared_refusal_split(name, limit=n_train if name.endswith("train") else n_val, root=data)
        for name in ("harmful_train", "harmless_train", "harmful_val", "harmless_val")
    }
    flag = "--out" if out else None
    with open_run("refusal fit", {"model": model, **cfg.to_json()}, root=out, flag=flag, seed=seed) as run:
        run.record(config=cfg)
        with console.status(f"loading {model} …"):
            handle = load_model(model, backend="hf", progress=False)
        run.record(model=handle.name, **model_hashes(handle))
        if layer is not None and layer >= handle.info.n_layers:
            raise InputError(
                f"--layer {layer} is out of range: {handle.name} has layers 0..{handle.info.n_layers - 1}."
            )
        torch.manual_seed(seed)
        res = fit_refusal(handle, **splits, config=cfg)
        res.save(run.dir)
        print_frame(res.probes.table, f"Refusal probe accuracy by layer ({handle.name})", console)
        if not res.generations.empty:
            print_frame(res.summary, f"Refusal rate (matcher; direction layer {res.layer})", console)
        print_frame(res.heads.head(10), "Top heads writing the refusal direction", console)
        run.record(
            layer=res.layer,
            best_probe_layer=res.probes.best_layer,
            best_val_acc=float(res.probes.table["val_acc"].max()),
            sizes={k: len(v) for k, v in splits.items()},
            timings=res.timings,
        )
    console.print(f"direction layer {res.layer}; best probe layer {res.probes.best_layer}")
    console.print(f"results: {run.dir}")


@app.command("harden")
def harden_cmd(
    model: str = typer.Option("smollm2-135m-instruct", help="packaged base model"),
    n_harmful: int = typer.Option(260, help="harmful train instructions taught to refuse"),
    n_harmless: int = typer.Option(240, help="harmless train instructions kept on the base model's answers"),
    n_wrapped: int = typer.Option(30, help="extra harmful examples in a role-play wrapper"),
    n_suffixed: int = typer.Option(30, help="extra harmful and harmless examples with a random token suffix"),
    rank: int = typer.Option(8, help="LoRA rank"),
    epochs: int = typer.Option(2, help="passes over the examples"),
    lr: float = typer.Option(3e-3, help="AdamW learning rate"),
    kl_weight: float = typer.Option(
        4.0, help="weight of the KL to the base model on prompts and harmless answers (keeps LM loss)"
    ),
    eval_harmless: int = typer.Option(60, help="harmless val prompts for the false-refusal rate"),
    seed: int = typer.Option(0, help="shuffling, wrappers, suffixes and LoRA init"),
    eval_base: bool = typer.Option(False, help="also measure the base model's refusal rates on val"),
    out: str = typer.Option(None, help="run directory root (default ./runs)"),
) -> None:
    """Train a refusal-hardening LoRA adapter; the adapter lands in RUN/adapter/, numbers in harden.json."""
    from analysis.refusal.harden import HardenConfig
    from analysis.refusal.organism import harden
    from probes.runs import open_run

    for value, flag in ((n_harmful, "--n-harmful"), (n_harmless, "--n-harmless"), (rank, "--rank")):
        checks.at_least(value, 1, flag)
    for value, flag in ((n_wrapped, "--n-wrapped"), (n_suffixed, "--n-suffixed"), (seed, "--seed")):
        checks.at_least(value, 0, flag)
    checks.at_least(epochs, 1, "--epochs")
    checks.at_least(eval_harmless, 1, "--eval-harmless")
    checks.between(lr, 0.0, 1.0, "--lr")
    checks.at_least(kl_weight, 0.0, "--kl-weight")
    with checks.as_flags():
        cfg = HardenConfig(
            model=model,
            n_harmful=n_harmful,
            n_harmless=n_harmless,
            n_wrapped=n_wrapped,
            n_suffixed=n_suffixed,
            rank=rank,
            epochs=epochs,
            lr=lr,
            kl_weight=kl_weight,
            seed=seed,
        )
    flag = "--out" if out else None
    with open_run("refusal harden", cfg.to_json(), root=out, flag=flag, seed=seed) as run:
        run.record(config=cfg)
        res = harden(cfg, run.dir, run=run, eval_harmless=eval_harmless, eval_base=eval_base)
    for name in ("base", "hardened"):
        r = res[name]
        rates = (
            f"refuses harmful val {r['refused_harmful_val']:.2f}, harmless val {r['refused_harmless_val']:.2f}; "
            if "refused_harmful_val" in r  # the base model's refusals are measured with --eval-base only
            else ""
        )
        console.print(f"{name:9s} {rates}held-out LM loss {r['heldout_lm_loss']:.4f}")
    console.print(f"LM loss change {res['lm_loss_change']:+.1%}; adapter: {run.dir / 'adapter'}")
