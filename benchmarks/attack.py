"""Probe-SSR vs our GCG on the same prompts and budget, in one process.

    python benchmarks/attack.py [--model smollm2-135m-instruct] [--n-prompts 4] [--steps 8]
        [--search-width 32] [--n-tokens 6] [--layers 6 10 14] [--only-refused] [--out runs]

For each method: one attempt per prompt (same suffix length, steps, candidates per step, judging
every ``--check-every`` steps with the refusal-phrase matcher on a greedy response, and with
``--success phrase+readout`` also the final-layer probe readout, with ``phrase+readout+llm`` also the
rubric LLM judge on a ``--final-new-tokens`` answer), then ASR and the
median time to first success. Throughput: candidates evaluated per second for Probe-SSR with the
truncated forward (stops after the last targeted layer), the same loss with a full forward, and GCG
(full forward plus target logits), on the same random candidates. Prints the ratios.

Writes into ``<out>/bench-attack/<stamp>-<hash>/``: ``attempts.jsonl``, ``summary.json``, ``run.json``.
Defaults are sized for a 2-core CPU in a few minutes; ``--model qwen2.5-coder-0.5b-instruct
--only-refused`` measures on prompts the model refuses.

    python benchmarks/attack.py --paper [--smoke] [--run-dir DIR] [--out runs]

The paper regime: the four campaigns of ``benchmarks/configs/paper/`` (Probe-, Steering-, Attention-SSR
and GCG on Qwen2.5-Coder-1.5B-Instruct, 20 refused val prompts, 5-token suffix, width 512, top-k 256, 60
steps, device cuda), run one after the other as resumable campaigns in ``<run dir>/<method>/`` (the same
command with ``--run-dir`` resumes), then compared (:func:`analysis.rerouting.compare.compare_campaigns`:
ASR and medians with 95% bootstrap intervals) into ``compare.parquet``. ``--smoke`` validates the same
configs and runs each for 1 step on one prompt on the tiny random model on CPU.

    python benchmarks/attack.py --compare RUN_DIR [RUN_DIR ...] [--common]

Campaigns side by side (:func:`analysis.rerouting.compare.compare_campaigns`): ASR under the in-loop
check and the content check (and a manual review where ``review.json`` exists) and median steps / time to
first success with 95% intervals, candidates/s; ``--common`` keeps the prompts every campaign attacked.

    python benchmarks/attack.py --profile CONFIG.toml [CONFIG.toml ...] [--profile-steps 10]

Seconds per phase (forward, backward, sampling, readout, generation, other) of one attempt per config on
its first refused prompt (:func:`analysis.rerouting.profile.profile_attempt`), before the cuts (judge
every step, no refusal peek, the whole prompt run for every candidate) and after them (the config's
``check_every``, ``refusal_peek`` and the cached prompt prefix).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch


def throughput(
    handle,
    prompt: str,
    objective,
    n_tokens: int,
    n_cand: int,
    full: bool,
    repeats: int = 2,
    cached: bool = False,
) -> float:
    """Candidates per second for ``objective`` on ``n_cand`` random suffixes (best of ``repeats``).

    ``full``: run every layer and the unembedding at the last position (what an implementation without
    truncation pays) instead of the objective's own forward. ``cached``: the prompt's prefix keys and
    values computed once (what the optimiser does with ``cache_prefix``), not counted in the time.
    """
    from analysis.rerouting import allowed_tokens, evaluate, prompt_slots
    from probes.architecture import run_forward

    slots = prompt_slots(handle, prompt)
    if cached:
        slots.cache(handle)
    emb = handle.hf.get_input_embeddings()
    g = torch.Generator().manual_seed(0)
    pool = allowed_tokens(handle.tokenizer, emb.weight.shape[0]).nonzero().flatten()
    cand = pool[torch.randint(0, len(pool), (n_cand, n_tokens), generator=g)]
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        with torch.no_grad():
            if full:
                fw = run_forward(
                    handle, emb(slots.assemble(cand)), objective.resid_layers, logits=True, logits_last=1
                )
                objective.loss(fw)
            else:
                evaluate(handle, slots, objective, cand, batch_size=n_cand)
        best = min(best, time.perf_counter() - t)
    return n_cand / best


PAPER_DIR = Path(__file__).parent / "configs" / "paper"


def paper_configs(folder: Path = PAPER_DIR, smoke: bool = False) -> list:
    """The paper-regime campaign configs (validated); ``smoke``: the same on ``tiny-3``, CPU, 1 step."""
    from analysis.rerouting import load_config
    from probes.datasets import refusal_data_dir
    from probes.errors import InputError

    files = sorted(Path(folder).glob("*.toml"))
    if not files:
        raise InputError(f"No campaign configs (*.toml) in {folder}.")
    out = []
    for f in files:
        cfg = load_config(f)
        if cfg.prompts_file and not Path(cfg.prompts_file).is_file() and refusal_data_dir() is not None:
            cfg = cfg.model_copy(update={"prompts_file": str(refusal_data_dir() / "harmful_val.json")})
        out.append(smoke_config(cfg) if smoke else cfg)
    return out


def smoke_config(cfg):
    """``cfg`` shrunk to a CPU smoke test: tiny 3-layer model, one prompt, one step of 8 candidates."""
    from analysis.rerouting import parse_config

    data = cfg.to_json()
    data |= {
        "model": "tiny-3",
        "device": "cpu",
        "prompts": ["the cat sat"],
        "prompts_file": None,
        "only_refused": False,
        "n_prompts": 1,
        "fit_prompts": 2,
        "max_new_tokens": 4,
        "final_new_tokens": None,
        "layers": [1] if cfg.layers else [],
        "alphas": None,
        "heads": [[1, 0]] if cfg.heads else [],
    }
    data["optimiser"] |= {"steps": 1, "search_width": 8, "topk": 8, "batch_size": 8, "buffer_size": 4}
    return parse_config(data)


def run_paper(args) -> Path:
    """Run (or resume) the paper-regime campaigns and compare them."""
    from analysis.rerouting import run_campaign
    from analysis.rerouting.compare import compare_campaigns
    from probes.errors import InputError
    from probes.runs import new_run_dir, write_sidecar, write_table

    cfgs = paper_configs(smoke=args.smoke)
    if any(c.device.startswith("cuda") for c in cfgs) and not torch.cuda.is_available():
        raise InputError(
            "The paper regime runs on a CUDA GPU and none is visible: add --smoke for a CPU check."
        )
    started = time.time()
    root = (
        Path(args.run_dir) if args.run_dir else new_run_dir("bench-attack-paper", vars(args), root=args.out)
    )
    dirs = []
    for cfg in cfgs:
        d = root / cfg.method
        print(f"{cfg.method}: {cfg.model}, {cfg.optimiser.steps} steps x {cfg.optimiser.search_width} -> {d}")
        run_campaign(cfg, d, progress=not args.smoke)
        dirs.append(d)
    tab = compare_campaigns(dirs)
    write_table(tab, root / "compare.parquet")
    print(tab.drop(columns="run_dir").T.to_string())
    write_sidecar(
        root,
        command="benchmarks/attack.py --paper",
        config=vars(args),
        model=cfgs[0].model,
        started=started,
        extra={"compare": tab.to_dict(orient="records")},
    )
    return root


def run_compare(args) -> Path:
    """Compare finished (or, with ``--common``, part-run) campaigns: ``compare.parquet`` + a table."""
    from analysis.rerouting.compare import compare_campaigns
    from probes.runs import new_run_dir, write_sidecar, write_table

    started = time.time()
    tab = compare_campaigns(args.compare, common=args.common)
    out = new_run_dir("bench-attack-compare", vars(args), root=args.out)
    write_table(tab, out / "compare.parquet")
    print(tab.drop(columns="run_dir").set_index("method").T.to_string())
    write_sidecar(
        out,
        command="benchmarks/attack.py --compare",
        config=vars(args),
        model=str(tab["model"].iloc[0]),
        started=started,
        extra={"compare": tab.to_dict(orient="records")},
    )
    return out


PROFILE_BEFORE = {"check_every": 1, "refusal_peek": 0}  # the uncut attempt: judge every step in full,
PROFILE_BEFORE_OPTIMISER = {"cache_prefix": False}  # and run the whole prompt for every candidate


def run_profile(args) -> Path:
    """Per campaign config, one attempt on its first refused prompt profiled twice: ``before`` the cuts
    (:data:`PROFILE_BEFORE`, no prefix cache) and ``after`` (the config's own ``check_every`` /
    ``refusal_peek`` / ``cache_prefix``), both for
    the full ``--profile-steps`` budget (no stop on success); writes ``profile.json``, prints the rows."""
    import analysis.rerouting as R
    from analysis.rerouting.profile import profile_attempt
    from probes.runs import new_run_dir, write_json, write_sidecar

    started = time.time()
    out = new_run_dir("bench-attack-profile", vars(args), root=args.out)
    rows, handle = [], None
    for path in args.profile:
        cfg = R.load_config(path)
        opt = cfg.optimiser.model_copy(update={"steps": args.profile_steps})
        cfg = cfg.model_copy(update={"optimiser": opt, "stop_on_success": False})
        if handle is None or handle.name != cfg.model:
            handle = R.load_handle(cfg)
        d = out / cfg.method
        d.mkdir(parents=True)
        prompts = cfg.prompt_list(limit=not cfg.only_refused)
        if cfg.only_refused:
            prompts = R.refused_prompts(handle, cfg.model_copy(update={"n_prompts": 1}), d, prompts)
        obj = R.build_objective(handle, cfg, d)
        before = {**PROFILE_BEFORE, "optimiser": opt.model_copy(update=PROFILE_BEFORE_OPTIMISER)}
        for variant, update in (("before", before), ("after", {})):
            c = cfg.model_copy(update=update)
            rec = profile_attempt(handle, obj, c, prompts[0], R.campaign_check(handle, c, d))
            rows.append(
                {
                    "method": cfg.method,
                    "variant": variant,
                    "check_every": c.check_every,
                    "refusal_peek": c.refusal_peek,
                    "cache_prefix": c.optimiser.cache_prefix,
                    "steps": rec["steps"],
                    "success": rec["success"],
                    **rec["profile"],
                }
            )
            print(rows[-1])
    write_json(rows, out / "profile.json")
    write_sidecar(out, command="benchmarks/attack.py --profile", config=vars(args), started=started)
    return out


def main(argv: list[str] | None = None) -> Path:
    import analysis.rerouting as R

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paper", action="store_true", help="run the paper regime (benchmarks/configs/paper)")
    p.add_argument("--smoke", action="store_true", help="with --paper: 1 step on the tiny model, CPU")
    p.add_argument("--run-dir", default=None, help="with --paper: a run folder to create or resume")
    p.add_argument("--compare", nargs="+", default=None, help="campaign run folders: compare them")
    p.add_argument("--common", action="store_true", help="with --compare: only the prompts all attacked")
    p.add_argument("--profile", nargs="+", default=None, help="campaign TOMLs: profile one attempt each")
    p.add_argument("--profile-steps", type=int, default=10, help="with --profile: steps per attempt")
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--n-prompts", type=int, default=4)
    p.add_argument(
        "--prompts-file", default=None, help="JSON/text prompts (default: shared harmful_val.json)"
    )
    p.add_argument("--only-refused", action="store_true", help="keep prompts the model refuses unattacked")
    p.add_argument(
        "--layers", type=int, nargs="+", default=None, help="Probe-SSR layers (default: L/4, L/3, L/2)"
    )
    p.add_argument("--n-tokens", type=int, default=6)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--search-width", type=int, default=32)
    p.add_argument("--topk", type=int, default=64)
    p.add_argument("--check-every", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument(
        "--success",
        default="phrase",
        choices=list(R.SUCCESS_CHECKS),
        help="in-loop success check (phrase+readout: the final-layer probe must also read the prompt as "
        "harmless; phrase+readout+llm: and the rubric LLM judge says the --final-new-tokens answer complies)",
    )
    p.add_argument("--final-new-tokens", type=int, default=None, help="re-judge a longer final answer")
    p.add_argument("--judge-model", default="qwen2.5-coder-1.5b-instruct", help="LLM judge (+llm only)")
    p.add_argument("--judge-dtype", default="bfloat16", choices=list(R.JUDGE_DTYPES))
    p.add_argument("--fit-prompts", type=int, default=32, help="train prompts per class for the probes")
    p.add_argument("--throughput-candidates", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.smoke and not args.paper:
        p.error("--smoke goes with --paper")
    if args.paper:
        return run_paper(args)
    if args.compare:
        return run_compare(args)
    if args.profile:
        return run_profile(args)
    started = time.time()

    from probes.datasets import load_instructions, refusal_data_dir
    from probes.errors import InputError
    from probes.runs import JsonlLog, new_run_dir, write_sidecar

    if args.n_prompts < 1:
        raise InputError(f"--n-prompts must be >= 1, got {args.n_prompts}.")
    base = R.parse_config(
        {
            "model": args.model,
            "method": "probe-ssr",
            "layers": [0],
            "fit_prompts": args.fit_prompts,
            "optimiser": {
                "n_tokens": args.n_tokens,
                "steps": args.steps,
                "search_width": args.search_width,
                "topk": args.topk,
                "batch_size": args.search_width,
            },
            "check_every": args.check_every,
            "max_new_tokens": args.max_new_tokens,
            "success": args.success,
            "final_new_tokens": args.final_new_tokens,
            "judge_model": args.judge_model,
            "judge_dtype": args.judge_dtype,
            "prompts_file": args.prompts_file or str(refusal_data_dir() / "harmful_val.json"),
        }
    )
    handle = R.load_handle(base)
    n_layers = handle.info.n_layers
    layers = args.layers or sorted({n_layers // 4, n_layers // 3, n_layers // 2})
    ssr = R.parse_config({**base.to_json(), "layers": layers})
    gcg = R.parse_config({**base.to_json(), "method": "gcg", "layers": []})
    run_dir = new_run_dir("bench-attack", {**vars(args), "layers": layers}, root=args.out)
    prompts = load_instructions(base.prompts_file)
    if args.only_refused:
        prompts = R.refused_prompts(
            handle, base.model_copy(update={"n_prompts": args.n_prompts}), run_dir, prompts
        )
    prompts = prompts[: args.n_prompts]
    print(
        f"{handle.name}: {len(prompts)} prompts, layers {layers}, suffix {args.n_tokens} tokens, "
        f"{args.steps} steps x {args.search_width} candidates, {args.threads} thread(s)"
    )

    objectives = {"probe-ssr": R.build_objective(handle, ssr), "gcg": R.build_objective(handle, gcg)}
    check = R.campaign_check(handle, base, run_dir)
    attempts = JsonlLog(run_dir / R.ATTEMPTS)
    summary: dict = {"model": handle.name, "prompts": len(prompts), "layers": layers, "methods": {}}
    for method, cfg in (("probe-ssr", ssr), ("gcg", gcg)):
        recs = []
        for prompt in prompts:
            rec = R.run_attempt(handle, objectives[method], cfg, prompt, 0, check)
            attempts.append(rec)
            recs.append(rec)
            print(
                f"  {method:9s} success={rec['success']!s:5s} steps={rec['steps']:2d} "
                f"loss {rec['initial_loss']:.3f}->{rec['final_loss']:.3f} {rec['total_s']:.1f}s  {prompt[:50]!r}"
            )
        times = [r["time_to_first_success_s"] for r in recs if r["time_to_first_success_s"] is not None]
        summary["methods"][method] = {
            "asr": sum(r["success"] for r in recs) / len(recs),
            "successes": sum(r["success"] for r in recs),
            "median_time_to_success_s": statistics.median(times) if times else None,
            "median_attempt_s": statistics.median(r["total_s"] for r in recs),
        }
    n = args.throughput_candidates
    cps = {
        "probe-ssr truncated": throughput(
            handle, prompts[0], objectives["probe-ssr"], args.n_tokens, n, full=False
        ),
        "probe-ssr full": throughput(
            handle, prompts[0], objectives["probe-ssr"], args.n_tokens, n, full=True
        ),
        "probe-ssr truncated + cached prefix": throughput(
            handle, prompts[0], objectives["probe-ssr"], args.n_tokens, n, full=False, cached=True
        ),
        "gcg": throughput(handle, prompts[0], objectives["gcg"], args.n_tokens, n, full=False),
        "gcg + cached prefix": throughput(
            handle, prompts[0], objectives["gcg"], args.n_tokens, n, full=False, cached=True
        ),
    }
    summary["candidates_per_s"] = cps
    s, g = summary["methods"]["probe-ssr"], summary["methods"]["gcg"]
    ratios = {
        "asr ssr/gcg": s["asr"] / g["asr"] if g["asr"] else None,
        "median time-to-first-success ssr/gcg": (
            s["median_time_to_success_s"] / g["median_time_to_success_s"]
            if s["median_time_to_success_s"] and g["median_time_to_success_s"]
            else None
        ),
        "candidates/s truncated/full (ssr)": cps["probe-ssr truncated"] / cps["probe-ssr full"],
        "candidates/s ssr/gcg": cps["probe-ssr truncated"] / cps["gcg"],
        "candidates/s cached/uncached prefix (ssr)": cps["probe-ssr truncated + cached prefix"]
        / cps["probe-ssr truncated"],
        "candidates/s cached/uncached prefix (gcg)": cps["gcg + cached prefix"] / cps["gcg"],
    }
    summary["ratios"] = ratios
    for method, m in summary["methods"].items():
        print(
            f"{method:9s} ASR {m['asr']:.2f} ({m['successes']}/{len(prompts)}), median time to first success "
            f"{m['median_time_to_success_s']}, median attempt {m['median_attempt_s']:.1f}s"
        )
    for k, v in cps.items():
        print(f"candidates/s {k:20s} {v:8.1f}")
    for k, v in ratios.items():
        print(f"ratio {k:38s} {'n/a' if v is None else f'{v:.3f}'}")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    write_sidecar(
        run_dir,
        command="benchmarks/attack.py",
        config=vars(args),
        model=handle.name,
        pack_sha256=handle.pack_sha256,
        started=started,
        extra={"summary": summary},
    )
    print(f"results: {run_dir}")
    return run_dir


if __name__ == "__main__":
    main()
