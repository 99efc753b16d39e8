"""``sublens edit search MODEL`` / ``sublens edit apply MODEL EDIT``: rank-1 OV-component weight edits."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console

from apps.cli.tables import print_frame
from probes.errors import InputError

app = typer.Typer(help="Rank-1 OV-component weight edits (search, apply).", no_args_is_help=True)
console = Console()


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InputError(f"{what} must be comma-separated numbers such as 0,0.5,2,3; got {text!r}.") from None


def _ns(n_min: int, n_max: int) -> tuple[int, ...]:
    if n_min < 2 or n_max < n_min:
        raise InputError(f"list lengths must satisfy 2 <= n_min <= n_max, got n_min={n_min}, n_max={n_max}.")
    return tuple(range(n_min, n_max + 1))


def _load(model: str):
    from probes.loading import load_model

    with console.status(f"loading {model} …"):
        return load_model(model, backend="hf", progress=False)


@app.command("search")
def search(
    model: str = typer.Argument(..., help="packaged model name or local path"),
    top_k: int = typer.Option(24, help="distinct sender components taken from the channel scan"),
    alphas: str = typer.Option("0,0.5,2,3", help="comma-separated rescaling factors"),
    modes: str = typer.Option("Q", help="composition modes used to rank senders"),
    min_receiver_layer: int = typer.Option(None, help="receivers at/after this layer (default 2/3 depth)"),
    heads: str = typer.Option("", help="also try these heads' top components: L.H,L.H"),
    head_components: int = typer.Option(4, help="components per head in --heads"),
    dev_n_min: int = typer.Option(4, help="smallest dev list length"),
    dev_n_max: int = typer.Option(10, help="largest dev list length"),
    dev_per_n: int = typer.Option(10, help="dev prompts per list length"),
    n_weight_power: float = typer.Option(0.0, help="weight dev N by N**power"),
    n_combine: int = typer.Option(3, help="best single edits combined greedily"),
    test_per_n: int = typer.Option(30, help="test prompts per list length (N = 2..10) for the report"),
    ioi_prompts: int = typer.Option(100, help="IOI prompts for the logit-difference side effect"),
    seed: int = typer.Option(0, help="prompt and null seed"),
    resume: str = typer.Option(None, help="resume this run directory (its saved config is used)"),
    out: str = typer.Option(None, help="run directory root (default ./runs)"),
) -> None:
    """Search (candidate, α) rescalings on the dev split, combine the best, report on the test split."""
    from analysis.edit_search import EditSearchConfig, run_edit_search
    from probes.runs import new_run_dir

    if resume:
        run_dir = Path(resume)
        cfg_file = run_dir / "config.json"
        if not cfg_file.is_file():
            raise InputError(
                f"--resume {resume}: no config.json there; pass a run directory of 'edit search'."
            )
        saved = json.loads(cfg_file.read_text())
        config = EditSearchConfig.parse(saved["config"])  # run_edit_search checks the model
    else:
        head_list = []
        for h in (x.strip() for x in heads.split(",") if x.strip()):
            try:
                layer, hd = (int(x) for x in h.split("."))
            except ValueError:
                raise InputError(f"--heads items must look like LAYER.HEAD (e.g. 21.5), got {h!r}.") from None
            head_list.append((layer, hd))
        config = EditSearchConfig(
            top_k=top_k,
            alphas=_floats(alphas, "--alphas"),
            modes=modes,
            min_receiver_layer=min_receiver_layer,
            heads=tuple(head_list),
            head_components=head_components,
            dev_n=_ns(dev_n_min, dev_n_max),
            dev_per_n=dev_per_n,
            n_weight_power=n_weight_power,
            n_combine=n_combine,
            test_per_n=test_per_n,
            ioi_prompts=ioi_prompts,
            seed=seed,
        )
        run_dir = None
    handle = _load(model)
    if run_dir is None:
        run_dir = new_run_dir("edit-search", {"model": model, **config.to_json()}, root=out)
    console.print(f"run directory: {run_dir}")
    res = run_edit_search(handle, config, run_dir, progress=True)
    console.print(
        f"dev score: baseline {res.baseline['score']:.3f} → best {res.best['score']:.3f} ({res.best['key']})"
    )
    if res.test_by_n is not None:
        print_frame(res.test_by_n, f"Laundry List test accuracy by N ({handle.name})", console)
        rep = res.report
        console.print(
            f"largest gain: {rep['max_gain_pp']:+.1f} pp at N={rep['max_gain_n']}; IOI logit diff "
            f"{rep['ioi_logit_diff'][0]} → {rep['ioi_logit_diff'][1]}; LM loss {rep['lm_loss'][0]:.4f} → "
            f"{rep['lm_loss'][1]:.4f} ({rep['lm_loss_rel_change_pct']:+.2f}%)"
        )
        console.print(f"edit saved: {res.spec_path}")
    else:
        console.print("[yellow]no edit beat the baseline on the dev split; nothing saved[/]")
    console.print(f"results: {run_dir}")


@app.command("apply")
def apply(
    model: str = typer.Argument(..., help="packaged model name or local path"),
    edit: str = typer.Argument(..., help="an edit spec .json written by 'edit search' or EditSpec.save"),
    n_min: int = typer.Option(2, help="smallest list length"),
    n_max: int = typer.Option(10, help="largest list length"),
    per_n: int = typer.Option(30, help="test prompts per list length"),
    seed: int = typer.Option(0, help="prompt seed"),
) -> None:
    """Apply a saved edit and print test-split Laundry List accuracy by N and the LM-loss change."""
    from analysis.tasks.evaluate import evaluate_laundry, laundry_gain
    from analysis.tasks.heldout import heldout_texts
    from probes.edits import EditSpec
    from probes.lm_loss import lm_loss

    started = time.time()
    spec = EditSpec.load(edit)
    handle = _load(model)
    spec.check(handle)  # wrong model → InputError before any work
    ns = list(_ns(n_min, n_max))
    texts = heldout_texts()

    def measure():
        res = evaluate_laundry(handle, n_items=ns, n_per_n=per_n, split="test", seed=seed, progress=False)
        return res.by_n, lm_loss(handle, texts)

    before, loss0 = measure()
    with spec.apply(handle):
        after, loss1 = measure()
    table = laundry_gain(before, after)
    edits = ", ".join(f"{e.layer}.{e.head}[{e.component}]×{e.alpha:g}" for e in spec.edits)
    print_frame(table, f"Laundry List test accuracy by N ({handle.name}; edit {edits})", console)
    console.print(
        f"LM loss {loss0:.4f} → {loss1:.4f} ({100 * (loss1 - loss0) / loss0:+.2f}%) "
        f"[{time.time() - started:.0f} s]"
    )
