"""Benchmark of the pure-JAX core: MLE fits and batched walker log-likelihoods.

Prints three tables (loglike, MCMC-comb kernel, then the fits):

1. time per MLE fit (:func:`hpcsys.core.fit.fit_mle`) for every model x
   likelihood at K = 25 and 20k / 80k / 300k pixels (first call = compile +
   run; then the best of ``--repeat`` runs), with Newton iterations and the
   achieved rate of the exact-Hessian evaluation;
2. one evaluation of :func:`hpcsys.core.likelihood.loglike` for 250 walkers
   at 80k pixels (K = 25), with a flop estimate and the achieved GFLOP/s;
3. the MCMC-comb walker kernel (:func:`hpcsys.methods.ensemble.combined_logpost`)
   for one half-ensemble (125 walkers) at the paper footprint's 95 209 pixels,
   beside the ``(2W x K) x (K x N)`` product alone in the same pixel chunks:
   that product is the floor of the kernel (the element-wise work comes on
   top), so the product's ``chain s`` (2 x ``--steps`` calls) is the least CPU
   time the sampling of one ``--walkers`` x ``--steps`` chain can take on this core.

Flop convention: a template sum ``a.t_p`` for ``W`` walkers is ``2 W K N``
flops; element-wise work is counted as 10 flops per (walker, pixel) for the
Gaussian and 30 for the skew-normal (``erfc``, ``log``, divisions); the
Hessian's Gram matrices ``T diag(w) T^T`` cost ``2 K^2 N`` each.

Usage::

    python benchmarks/bench_core.py [--sizes 20000 80000 300000] [--repeat 3]
                                    [--kernel-npix 95209] [--steps 1500] [--kernel-only]

Timings depend on what else runs on the machine: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from hpcsys.core.contamination import contaminate  # noqa: E402
from hpcsys.core.fit import fit_mle, loglike_derivatives  # noqa: E402
from hpcsys.core.likelihood import loglike, param_layout  # noqa: E402
from hpcsys.core.models import LIKELIHOODS, MODELS  # noqa: E402
from hpcsys.seeds import rng  # noqa: E402

K = 25


def problem(npix: int, seed: int = 0):
    gen = rng(seed, "synthetic", 900, npix)
    T = gen.standard_normal((K, npix))
    a = gen.normal(0, 0.02, K)
    b = gen.normal(0, 0.005, K)
    field = 0.3 * gen.standard_normal(npix)
    return jnp.asarray(np.asarray(contaminate(field, T, a, b))), jnp.asarray(T), gen


def best_of(fn, repeat: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    out = fn()
    jax.block_until_ready(out)
    first = time.perf_counter() - t0
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return first, best


def hessian_flops(model: str, likelihood: str, npix: int) -> float:
    has_a, has_b = MODELS[model]
    n_t = has_a + has_b
    pairs = n_t * (n_t + 1) // 2
    gram = 2.0 * pairs * K * K * npix
    sums = 2.0 * n_t * K * npix * 3  # template sums, gradient and mixed (t, s/g) columns
    per_pixel = (60.0 if likelihood == "gaussian" else 200.0) * npix  # per-pixel derivatives
    return gram + sums + per_pixel


def bench_fits(sizes, repeat):
    print(f"\nMLE fits, K = {K} (first = compile + run; best of {repeat})")
    head = (f"{'Npix':>7} {'model':>14} {'likelihood':>10} {'first s':>8} {'fit s':>8} "
            f"{'iters':>5} {'derivs s':>9} {'GFLOP/s':>8}")
    print(head)
    print("-" * len(head))
    for npix in sizes:
        delta, T, _ = problem(npix)
        for model in MODELS:
            for lik in LIKELIHOODS:
                first, best = best_of(lambda d=delta, t=T, m=model, lk=lik: fit_mle(d, t, m, lk).theta,
                                      repeat)
                res = fit_mle(delta, T, model, lik)
                th = jnp.asarray(res.theta)
                _, td = best_of(lambda th=th, d=delta, t=T, m=model, lk=lik:
                                loglike_derivatives(th, d, t, m, lk), repeat)
                rate = hessian_flops(model, lik, npix) / td / 1e9
                flag = "" if res.converged else "  NOT CONVERGED"
                print(f"{npix:>7} {model:>14} {lik:>10} {first:>8.3f} {best:>8.3f} "
                      f"{res.n_iter:>5} {td:>9.4f} {rate:>8.1f}{flag}")


def bench_walkers(npix, walkers, repeat):
    delta, T, gen = problem(npix, seed=1)
    print(f"\nloglike for {walkers} walkers, {npix} pixels, K = {K} (best of {repeat})")
    head = f"{'model':>14} {'likelihood':>10} {'first s':>8} {'eval s':>8} {'GFLOP':>7} {'GFLOP/s':>8}"
    print(head)
    print("-" * len(head))
    for lik in LIKELIHOODS:
        for model in ("additive", "combined"):
            lay = param_layout(model, lik, K)
            theta = np.zeros((walkers, lay.size))
            if lay.a is not None:
                theta[:, lay.a] = gen.normal(0, 0.02, (walkers, K))
            if lay.b is not None:
                theta[:, lay.b] = gen.normal(0, 0.005, (walkers, K))
            theta[:, lay.s] = 0.3
            if lay.g is not None:
                theta[:, lay.g] = 0.5
            theta = jnp.asarray(theta)
            first, best = best_of(lambda th=theta, m=model, lk=lik: loglike(th, delta, T, m, lk), repeat)
            has_a, has_b = MODELS[model]
            elem = 10.0 if lik == "gaussian" else 30.0
            if lik == "gaussian" and not has_b:
                # Gram form: T T^T and T d once, then O(K^2) per walker
                flops = 2.0 * K * K * npix + 2.0 * K * npix + walkers * (2.0 * K * K + 4.0 * K)
            else:
                flops = 2.0 * walkers * K * npix * (has_a + has_b) + elem * walkers * npix
            print(f"{model:>14} {lik:>10} {first:>8.3f} {best:>8.4f} {flops / 1e9:>7.2f} "
                  f"{flops / best / 1e9:>8.1f}")


def bench_mcmc_kernel(npix: int, walkers: int, steps: int, repeat: int) -> None:
    from hpcsys.methods.ensemble import combined_logpost, pixel_chunks

    delta, T, gen = problem(npix, seed=2)
    chunks = pixel_chunks(np.asarray(delta), np.asarray(T))
    half = walkers // 2
    theta = np.zeros((half, 2 * K + 1))
    theta[:, :K] = gen.normal(0, 0.02, (half, K))
    theta[:, K:2 * K] = gen.normal(0, 0.005, (half, K))
    theta[:, -1] = 0.3
    theta = jnp.asarray(theta)

    @jax.jit
    def product_only(th, ch):  # the kernel's two template products and nothing else
        def body(acc, xs):
            t, _ = xs
            return acc + jnp.sum(th[:, :K] @ t, axis=1) + jnp.sum(th[:, K:2 * K] @ t, axis=1), None
        return jax.lax.scan(body, jnp.zeros(th.shape[0]), (ch.templates, ch.delta))[0]

    flops = 2.0 * (2 * half) * K * npix
    calls = 2 * steps  # two half-ensemble updates per step
    print(f"\nMCMC-comb walker kernel: {half} walkers (half of {walkers}), {npix} pixels, K = {K}, "
          f"chunks of {chunks.delta.shape[1]} (best of {repeat}); chain of {steps} steps = {calls} calls")
    head = f"{'part':>24} {'ms/call':>8} {'GFLOP/s':>8} {'chain s':>8}"
    print(head)
    print("-" * len(head))
    rows = (("(a; b).T products alone", product_only), ("combined_logpost", combined_logpost))
    best = {}
    for name, fn in rows:
        _, best[name] = best_of(lambda f=fn: f(theta, chunks), repeat)
        print(f"{name:>24} {best[name] * 1e3:>8.1f} {flops / best[name] / 1e9:>8.1f} "
              f"{best[name] * calls:>8.1f}")
    floor, kernel = best[rows[0][0]], best[rows[1][0]]
    print(f"element-wise work on top of the products: {100 * (kernel / floor - 1):.0f} %; "
          f"floor of the sampling: {floor * calls:.0f} s per chain on this core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 80_000, 300_000])
    parser.add_argument("--walkers", type=int, default=250)
    parser.add_argument("--walker-npix", type=int, default=80_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kernel-npix", type=int, default=95_209,
                        help="pixels of the MCMC-comb kernel case (default: the paper footprint)")
    parser.add_argument("--steps", type=int, default=1500, help="chain length for 'chain s'")
    parser.add_argument("--kernel-only", action="store_true", help="only table 3")
    args = parser.parse_args()
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, float64, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if not args.kernel_only:
        bench_walkers(args.walker_npix, args.walkers, args.repeat)
    bench_mcmc_kernel(args.kernel_npix, args.walkers, args.steps, max(args.repeat, 5))
    if not args.kernel_only:
        bench_fits(args.sizes, args.repeat)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
