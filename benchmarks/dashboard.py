"""Dashboard latency in a real browser (Playwright + Debian chromium), first, second and third app start.

On one model (default SmolLM2), with an empty dashboard cache (the packs are linked in from the real
cache, so nothing is downloaded):

1. first start: ``streamlit run`` → grid painted (the one-off scan runs and is saved), then a click on the
   strongest grid square → the pair's component numbers, and → the whole panel with removal effects;
2. second start, same cache folder, same browser context (HTTP cache warm): → grid painted (read from
   disk), click → numbers and whole panel (removal effects read from disk), and a click on a second pair
   whose removal effects are not saved (computed with a spinner);
3. third start, same again: Chromium keeps a script's compiled code from its second load on, so the third
   start shows what that gains for the chart bundles. The goals are judged on the second start.

"Grid painted" is timed from the browser's navigation, once the server answers its health check (the
server's own start is printed beside it), until the grid's canvas is painted; a click from the pointer
going down until the panel's numbers (and the whole panel) are painted, once the page is idle. Both are
read on the page's own clock by a MutationObserver, two animation frames after the element appears
(Playwright's waits poll with pauses growing to 0.5 s, which added up to that at random). Both starts
use the same port and one persistent browser profile, as a researcher restarting ``sublens app`` does (the browser's
HTTP and compiled-code caches are per origin and per profile; a new port would be a cold browser). Goals (issue 14):
second start → grid < 2 s; click → panel numbers < 0.5 s (removal effects within 2 s).

    python benchmarks/dashboard.py [--model smollm2-135m-instruct]

On a machine shared with other jobs the numbers are indicative only.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from browser_kit import (  # noqa: E402  (the e2e tests' server and page helpers)
    ARGS,
    ARTIFACTS,
    CHROMIUM,
    GRID,
    GRID_POINTS,
    _wait_idle,
    free_port,
    grid_layout,
    serve,
    strongest_square,
)

GOALS = {"second start → grid painted": 2.0, "click → panel numbers (second start)": 0.5}


def fresh_cache() -> Path:
    """A cache root with the real cache's packs and activations linked in and no saved dashboard data."""
    from probes.packs import cache_root

    root = Path(tempfile.mkdtemp(prefix="sublens-bench-"))
    for child in cache_root().iterdir():
        if child.name != "dashboard":
            (root / child.name).symlink_to(child)
    return root


# Timed in the page, on the browser's clock (performance.now(): milliseconds since navigation): a
# MutationObserver sees the element, and the time is taken two animation frames later (after it is
# painted). Playwright's own waits poll with pauses growing to 0.5 s.
PAGE_CLOCK_JS = (
    """(() => {
  const L = window.__lens = {armed: null};
  const GRID = '__GRID__';
  const text = sel => [...document.querySelectorAll(sel)].map(e => e.textContent).join('|');
  const tables = () => text('[data-testid="stTable"]');
  const painted = f => requestAnimationFrame(() => requestAnimationFrame(f));  // after the next paint
  const check = () => {
    const now = performance.now();
    if (L.grid === undefined && L.gridSeen === undefined && document.querySelector(GRID + ' canvas')) {
      L.gridSeen = now;  // painted on the next frame
      painted(() => { L.grid = performance.now(); });
    }
    const a = L.armed;
    if (!a || a.clicked === undefined) return;
    const heading = [...document.querySelectorAll('h3')].some(h => h.textContent.includes(a.heading));
    if (!heading) return;
    const t = tables();
    if (a.seen === undefined && t.includes('singular_value') && t !== a.tablesBefore) {
      a.seen = now; painted(() => { a.numbers = performance.now(); });
    }
    const done = text('[data-testid="stCaptionContainer"]');
    if (/panel computed in/.test(done) && done !== a.captionsBefore
        && t.includes('logit_diff_removed') && a.wholeSeen === undefined) {
      a.wholeSeen = now; painted(() => { a.whole = performance.now(); });
    }
  };
  new MutationObserver(check).observe(document, {subtree: true, childList: true, characterData: true,
                                                 attributes: true, attributeFilter: ['aria-label']});
  document.addEventListener('pointerdown', () => { if (L.armed) L.armed.clicked = performance.now(); }, true);
  L.arm = heading => { L.armed = {heading, tablesBefore: tables(),
                                  captionsBefore: text('[data-testid="stCaptionContainer"]')}; };
})()"""
).replace("__GRID__", GRID)


def grid_paint(page, url: str) -> float:
    """Seconds from navigation until the grid's canvas is drawn (its element holds the grid's description
    and two animation frames have passed: ECharts paints on the next frame), on the page's clock."""
    page.goto(f"{url}/")
    page.locator(GRID_POINTS).first.wait_for(timeout=180_000)
    page.wait_for_function("() => window.__lens.grid !== undefined", timeout=60_000)
    return page.evaluate("() => window.__lens.grid") / 1e3


def click_point(page, neighbour: bool = False) -> tuple[float, float, str]:
    """Click the grid square of the strongest shown pair (``neighbour``: the one right of it, the same
    sender and the next receiver head); seconds from the pointer going down to the numbers and to the
    whole panel, on the page's clock."""
    _wait_idle(page, 600_000)
    target = strongest_square(page)
    x, y, sender, receiver = target["x"], target["y"], target["sender"], target["receiver"]
    if neighbour:
        geometry, _ = grid_layout(page)
        layer, head = (int(v) for v in re.findall(r"\d+", receiver))
        step = 1 if head + 1 < geometry.n_heads else -1
        x, receiver = x + step * geometry.px, f"L{layer}.H{head + step}"
    page.mouse.move(x - 4, y - 4)
    page.mouse.move(x, y)
    page.wait_for_timeout(300)
    heading = f"{sender} → {receiver}"
    page.evaluate("h => window.__lens.arm(h)", heading)
    page.mouse.click(x, y)
    page.wait_for_function("() => window.__lens.armed.whole !== undefined", timeout=600_000)
    t = page.evaluate("() => window.__lens.armed")
    return (t["numbers"] - t["clicked"]) / 1e3, (t["whole"] - t["clicked"]) / 1e3, heading


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--cache", help="reuse this cache folder (from an earlier run) instead of a fresh one")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    cache = Path(args.cache) if args.cache else fresh_cache()
    out: dict[str, float] = {}
    port, profile = free_port(), tempfile.mkdtemp(prefix="sublens-browser-")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        context.add_init_script(PAGE_CLOCK_JS)
        for run in ("first", "second", "third"):
            env = {"SUBLENS_CACHE": str(cache)}
            with serve(args.model, env=env, log_name=f"bench_{run}.log", timeout_s=180, port=port) as (
                url,
                boot,
            ):
                page = context.new_page()
                out[f"{run} start: server up (process start → health)"] = boot
                out[f"{run} start → grid painted"] = grid_paint(page, url)
                numbers, full, heading = click_point(page)
                out[f"click → panel numbers ({run} start)"] = numbers
                out[f"click → whole panel with removal effects ({run} start)"] = full
                page.screenshot(path=str(ARTIFACTS / f"bench_{args.model}_{run}.png"), full_page=True)
                if run == "second":
                    numbers, full, _ = click_point(page, neighbour=True)
                    out["click another pair → panel numbers"] = numbers
                    out["click another pair → whole panel (removal effects computed)"] = full
                page.close()
        context.close()
    shutil.rmtree(profile, ignore_errors=True)
    if not args.cache:
        shutil.rmtree(cache)  # the links to the real packs go, the packs stay
    print(f"\ndashboard benchmark, {args.model} (last pair opened: {heading})")
    for name, seconds in out.items():
        goal = GOALS.get(name)
        ratio = f"  goal < {goal:.1f} s: {seconds / goal:.2f}× the goal" if goal else ""
        print(f"  {name:<62} {seconds:7.2f} s{ratio}")


if __name__ == "__main__":
    main()
