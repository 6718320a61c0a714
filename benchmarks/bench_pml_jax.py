"""The PML gradient in JAX next to ours (Liu & Xu, section 4.2; paper notes section 6).

The same step as :mod:`solvers._pml_kernels` (the consistent discretisation,
state ``(u_prev, u, phi, psi)`` on an ``(nx+2) x (ny+2)`` grid with a zero
ring, source added after ``phi'``/``psi'``) and the same running loss, written
in ``jax.numpy`` in float64 (``jax_enable_x64``), differentiated by
``jax.grad`` with respect to the squared velocity ``c``:

* ``jax grad (store-all)`` -- ``lax.scan`` over the n steps; reverse mode keeps
  every step's residuals;
* ``jax grad + checkpoint (sqrt(n) nested scan remat)`` -- an outer
  ``lax.scan`` over ``n // m`` segments of ``m = round(sqrt(n))`` steps, each
  segment an inner ``lax.scan`` wrapped in ``jax.checkpoint`` with the default
  policy (save nothing inside the segment): the backward pass keeps the
  segment boundaries and recomputes one segment at a time (a tail of
  ``n mod m`` steps is a plain scan);
* ``pebbles treeverse S=20`` and ``pebbles store-all`` -- our Numba kernels
  through :func:`pebbles.replay` (the schedule's checkpoint game, buffer pool).

First both are validated on a small grid in the same run (relative loss and
``dL/dc`` differences). Then every configuration runs at ``--size`` x
``--size`` x ``--steps`` (default 200 x 200 x 2000) in a fresh subprocess,
which reports its wall time (JAX: the compiled function only; compilation is
reported in the note) and its peak RSS minus its RSS after setup (the peak is
reset with ``/proc/self/clear_refs`` after setup where Linux allows it).
Finally the memory JAX store-all would need at the paper's size is printed
(states x bytes, a lower bound: XLA keeps more residuals per step).

Without JAX the JAX rows are reported with status ``missing``.

Run ``python benchmarks/bench_pml_jax.py --json jax.json`` (about 2 min).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from _common import (
    json_record,
    machine_info,
    machine_markdown,
    output_file,
    positive_seconds,
    publish,
)
from bench_pml import peak_rss_mb, reset_peak_rss, rss_mb, run_one

from pebbles.cli import positive
from solvers import pml

JAX_METHODS = ("jax grad (store-all)", "jax grad + checkpoint (sqrt(n) nested scan remat)")
OURS = {"pebbles treeverse S=20": {"method": "treeverse", "pebbles": 20},
        "pebbles store-all": {"method": "store-all"}}


def have_jax() -> bool:
    """Whether jax can be imported."""
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def jax_loss_fn(cfg: pml.PMLConfig, remat: bool):
    """``loss(c, s0, fsrc, observed)`` in JAX: the running loss of ``cfg``'s experiment."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    sol = pml.PMLSolver(cfg, pml.uniform_model(cfg))
    dt, ax, ay, bx, by, ex, ey = (float(v) for v in sol.k[:7])
    sg, tu = jnp.asarray(sol.sig[1:-1, None]), jnp.asarray(sol.tau[None, 1:-1])
    half = 0.5 * dt * (sg + tu)
    isrc, jsrc = sol.isrc, sol.jsrc
    di, dj = jnp.asarray(sol.det_i), jnp.asarray(sol.det_j)
    m = slice(1, -1)

    def pad(x):
        return jnp.pad(x, 1)

    def step(c, s, fsrc):
        wo, w, ph, ps = s[0], s[1], s[2], s[3]
        cc = c[m, m]
        un = pad(((2.0 - sg * tu * dt * dt - 2.0 * cc * (ax + ay)) * w[m, m]
                  + cc * ax * (w[2:, m] + w[:-2, m]) + cc * ay * (w[m, 2:] + w[m, :-2])
                  + bx * (ph[2:, m] - ph[:-2, m]) + by * (ps[m, 2:] - ps[m, :-2])
                  - (1.0 - half) * wo[m, m]) / (1.0 + half))
        phn = pad((1.0 - dt * sg) * ph[m, m] + cc * (tu - sg) * ex * (un[2:, m] - un[:-2, m]))
        psn = pad((1.0 - dt * tu) * ps[m, m] + cc * (sg - tu) * ey * (un[m, 2:] - un[m, :-2]))
        return jnp.stack([w, un.at[isrc, jsrc].add(fsrc), phn, psn])

    def scan_steps(c, s, xs):
        def body(s, x):
            s = step(c, s, x[0])
            r = s[1, di, dj] - x[1]
            return s, jnp.dot(r, r)
        s, ls = jax.lax.scan(body, s, xs)
        return s, jnp.sum(ls)

    def loss(c, s0, fsrc, observed):
        xs = (fsrc, observed[1:])
        if not remat:
            return scan_steps(c, s0, xs)[1]
        n = fsrc.shape[0]
        seg = max(round(math.sqrt(n)), 1)
        nseg = n // seg
        head = jax.tree_util.tree_map(lambda a: a[: nseg * seg].reshape(nseg, seg, *a.shape[1:]),
                                      xs)
        segment = jax.checkpoint(lambda s, x: scan_steps(c, s, x))
        s, ls = jax.lax.scan(segment, s0, head)
        total = jnp.sum(ls)
        if nseg * seg < n:
            tail = jax.tree_util.tree_map(lambda a: a[nseg * seg:], xs)
            total = total + scan_steps(c, s, tail)[1]
        return total

    return loss


def jax_gradient(cfg: pml.PMLConfig, c: np.ndarray, observed: np.ndarray, remat: bool,
                 timed: bool = False) -> dict:
    """Loss and ``dL/dc`` by ``jax.value_and_grad`` (compiled ahead, then run once)."""
    import jax

    sol = pml.PMLSolver(cfg, c)
    args = (c, sol.zero_state(), sol.source * cfg.dt**2, observed)
    t0 = time.perf_counter()
    fn = jax.jit(jax.value_and_grad(jax_loss_fn(cfg, remat))).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    reset = reset_peak_rss() if timed else False
    base = rss_mb()
    t0 = time.perf_counter()
    value, grad = fn(*args)
    grad = np.asarray(jax.block_until_ready(grad))
    seconds = time.perf_counter() - t0
    return {"loss": float(value), "grad_c": grad, "seconds": seconds, "compile_s": compile_s,
            "rss_base_mb": base, "peak_rss_mb": peak_rss_mb(), "peak_reset": reset}


def small_config() -> pml.PMLConfig:
    """A small grid where the pulse crosses detectors (0.42 of the CFL limit)."""
    return pml.PMLConfig(nx=40, ny=36, steps=120, h=0.11, width=6.0, delay=25.0,
                         n_detectors=40)


def validate() -> dict:
    """Loss and ``dL/dc`` of JAX (both variants) against ours (store-all) on a small grid."""
    import pebbles

    cfg = small_config()
    rng = np.random.default_rng(0)
    c = pml.uniform_model(cfg) * (1 + 0.1 * rng.random(cfg.shape))
    observed = pml.record(cfg)
    ours = pml.gradient(cfg, c, pebbles.store_all(cfg.steps), observed)
    out = {"size": [cfg.nx, cfg.ny], "n": cfg.steps}
    gnorm = np.linalg.norm(ours.grad_c[1:-1, 1:-1])
    for key, remat in (("", False), ("remat_", True)):
        j = jax_gradient(cfg, c, observed, remat)
        out[key + "loss_rel_diff"] = abs(j["loss"] - ours.loss) / abs(ours.loss)
        diff = j["grad_c"][1:-1, 1:-1] - ours.grad_c[1:-1, 1:-1]
        out[key + "grad_rel_diff"] = float(np.linalg.norm(diff) / gnorm)
    out["loss"] = ours.loss
    return out


def run_config(spec: dict) -> dict:
    """One configuration (called in a fresh subprocess)."""
    size, n = spec["size"], spec["n"]
    if spec["method"] in JAX_METHODS:
        cfg = pml.PMLConfig(nx=size, ny=size, steps=n)
        observed = np.load(spec["observed"])
        r = jax_gradient(cfg, pml.uniform_model(cfg), observed,
                         remat=spec["method"] != JAX_METHODS[0], timed=True)
        return {"seconds": r["seconds"], "peak_mb": r["peak_rss_mb"] - r["rss_base_mb"],
                "loss": r["loss"], "grad_c_norm": float(np.linalg.norm(r["grad_c"])),
                "note": f"compile {r['compile_s']:.1f} s (not included)"}
    r = run_one({"size": size, "n": n, "observed": spec["observed"], "inplace": False,
                 **OURS[spec["method"]]})
    return {"seconds": r["seconds"], "peak_mb": r["peak_rss_mb"] - r["rss_base_mb"],
            "loss": r["loss"], "grad_c_norm": r["grad_c_norm"],
            "note": f"{r['forward_steps']} forward steps, peak {r['peak_states']} states"}


def _subprocess(spec: dict, timeout: float) -> dict:
    """One configuration's record, measured in a fresh process (:func:`json_record`)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", json.dumps(spec)]
    return json_record(cmd, timeout)


def records(size: int, n: int, jax_ok: bool, timeout: float) -> list[dict]:
    cfg = pml.PMLConfig(nx=size, ny=size, steps=n)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        obs = str(Path(tmp) / "observed.npy")
        np.save(obs, pml.record(cfg))
        for method in (*JAX_METHODS, *OURS):
            if method in JAX_METHODS and not jax_ok:
                row = {"status": "missing", "note": "jax is not installed"}
            else:
                row = _subprocess({"method": method, "size": size, "n": n, "observed": obs},
                                  timeout)
            rows.append({"method": method, "seconds": None, "peak_mb": None, **row})
    return rows


def paper_store_all_gb() -> float:
    """States x bytes of store-all at the paper's size (1000 x 1000, 9999 steps)."""
    cfg = pml.PMLConfig()
    return (cfg.steps + 1) * 4 * cfg.shape[0] * cfg.shape[1] * 8 / 1e9


def table(result: dict) -> str:
    v = result["validation"]
    lines = [f"validation ({v.get('size')}, n={v.get('n')}): "
             + ", ".join(f"{k} {val:.2e}" for k, val in v.items() if k.endswith("diff")), "",
             "| method | status | seconds | peak MB | note |", "|---|---|---|---|---|"]
    for r in result["records"]:
        sec = "" if r["seconds"] is None else f"{r['seconds']:.2f}"
        mb = "" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
        lines.append(f"| {r['method']} | {r['status']} | {sec} | {mb} | {r.get('note', '')} |")
    lines += ["", f"JAX store-all at the paper's size (1000 x 1000 x 9999) needs at least "
                  f"{result['paper_size_store_all_gb']:.0f} GB (states x bytes)."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=positive, default=200)
    p.add_argument("--steps", type=positive, default=2000)
    p.add_argument("--timeout", type=positive_seconds, default=1200.0,
                   help="seconds per configuration")
    p.add_argument("--no-jax", action="store_true", help="report the JAX rows as missing")
    p.add_argument("--json", type=output_file, default=None, metavar="OUT")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # one configuration
    args = p.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_config(json.loads(args.one))))
        return 0
    jax_ok = have_jax() and not args.no_jax
    info = machine_info(("numpy", "numba", "jax", "jaxlib"))
    result: dict = {"machine": info, "size": args.size, "n": args.steps}
    result["validation"] = validate() if jax_ok else {"status": "missing"}
    result["records"] = records(args.size, args.steps, jax_ok, args.timeout)
    result["paper_size_store_all_gb"] = paper_store_all_gb()
    text = (f"# PML gradient: JAX and pebbles ({args.size}x{args.size}, {args.steps} steps)"
            f"\n\n{machine_markdown(info)}\n\n{table(result)}")
    return publish(args.json, result, text)


if __name__ == "__main__":
    sys.exit(main())
