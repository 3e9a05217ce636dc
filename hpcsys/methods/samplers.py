"""Ensemble samplers of the MCMC methods: emcee and a device-resident JAX stretch move.

Private to :mod:`hpcsys.methods` (the public names are re-exported by
:mod:`hpcsys.methods.ensemble`, whose docstring describes both backends).
"""

from __future__ import annotations

import time
from functools import partial
from typing import NamedTuple

import emcee
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from hpcsys.methods._shared import MethodInputError

__all__ = ["SAMPLERS", "STRETCH_A", "ChainResult", "child_seed", "sample_emcee", "sample_jax"]

#: Stretch-move scale of Goodman & Weare (emcee's default).
STRETCH_A = 2.0


# --------------------------------------------------------------------------- samplers


class ChainResult(NamedTuple):
    """Kept samples of an ensemble run.

    ``samples`` (S, W, P) and ``log_prob`` (S, W) after burn-in and thinning;
    ``acceptance`` (W,) over all steps; ``n_outside`` proposals outside the
    domain (all rejected); ``wall_time`` seconds of sampling.
    """

    samples: np.ndarray
    log_prob: np.ndarray
    acceptance: np.ndarray
    n_outside: int
    wall_time: float


def child_seed(seed: np.random.SeedSequence, i: int) -> np.random.SeedSequence:
    """The i-th child of ``seed`` (like ``spawn``, without mutating ``seed``)."""
    return np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, i),
                                  pool_size=seed.pool_size)


def sample_emcee(logpost, data, p0: np.ndarray, n_steps: int, burn_in: int, thin: int,
                 seed: np.random.SeedSequence) -> ChainResult:
    """Reference backend: :class:`emcee.EnsembleSampler`, one batched JAX call per half step.

    Parameters
    ----------
    logpost : callable
        ``logpost(theta (W, P), data) -> (W,)``, jit-compiled.
    data : pytree
        Second argument of ``logpost``.
    p0 : ndarray, shape (W, P)
        Initial walkers, all inside the domain.
    n_steps, burn_in, thin : int
    seed : numpy.random.SeedSequence
        Seeds emcee's generator.

    Returns
    -------
    ChainResult
    """
    n_outside = 0

    def log_prob(coords: np.ndarray) -> np.ndarray:
        nonlocal n_outside
        out = np.asarray(logpost(jnp.asarray(coords), data))
        n_outside += int(np.count_nonzero(~np.isfinite(out)))
        return out

    W, P = p0.shape
    t0 = time.perf_counter()
    sampler = emcee.EnsembleSampler(W, P, log_prob, vectorize=True,
                                    moves=emcee.moves.StretchMove(a=STRETCH_A))
    sampler.random_state = np.random.RandomState(np.random.MT19937(seed)).get_state()
    sampler.run_mcmc(p0, n_steps, progress=False)
    samples = sampler.get_chain(discard=burn_in, thin=thin)
    lp = sampler.get_log_prob(discard=burn_in, thin=thin)
    return ChainResult(np.asarray(samples), np.asarray(lp), np.asarray(sampler.acceptance_fraction),
                       n_outside, time.perf_counter() - t0)


def _stretch_half(key: Array, x: Array, lp: Array, c: Array, logpost, data):
    """Stretch-move update of walkers ``x`` against the complementary set ``c`` (as emcee)."""
    kz, kj, ku = jax.random.split(key, 3)
    n, P = x.shape
    z = ((STRETCH_A - 1.0) * jax.random.uniform(kz, (n,), dtype=x.dtype) + 1.0) ** 2 / STRETCH_A
    j = jax.random.randint(kj, (n,), 0, c.shape[0])
    prop = c[j] - (c[j] - x) * z[:, None]
    lp_new = logpost(prop, data)
    outside = ~jnp.isfinite(lp_new)
    log_acc = (P - 1.0) * jnp.log(z) + lp_new - lp
    accept = (jnp.log(jax.random.uniform(ku, (n,), dtype=x.dtype)) < log_acc) & ~outside
    return (jnp.where(accept[:, None], prop, x), jnp.where(accept, lp_new, lp),
            accept.astype(jnp.int32), jnp.sum(outside, dtype=jnp.int32))


def _stretch_step(key: Array, pos: Array, lp: Array, logpost, data):
    """One ensemble step: random red/blue split, then each half updated against the other.

    The two half-updates run in a ``fori_loop`` so the program holds a single
    copy of ``logpost`` (``W`` must be even).
    """
    W = pos.shape[0]
    n = W // 2
    kp, kh = jax.random.split(key)
    perm = jax.random.permutation(kp, W)

    def half(i, carry):
        pos, lp, acc, out = carry
        active = lax.dynamic_slice(perm, (i * n,), (n,))
        other = lax.dynamic_slice(perm, ((1 - i) * n,), (n,))
        x, lx, a, o = _stretch_half(jax.random.fold_in(kh, i), pos[active], lp[active], pos[other],
                                    logpost, data)
        return pos.at[active].set(x), lp.at[active].set(lx), acc.at[active].add(a), out + o

    return lax.fori_loop(0, 2, half, (pos, lp, jnp.zeros(W, jnp.int32), jnp.zeros((), jnp.int32)))


@partial(jax.jit, static_argnames=("logpost", "n_steps", "burn_in", "thin"))
def _jax_chain(key: Array, p0: Array, data, logpost, n_steps: int, burn_in: int, thin: int):
    """The whole chain as one program: a scan over the burn-in, then one over kept blocks.

    Step ``i`` (0-based) is kept when ``i >= burn_in`` and ``(i - burn_in + 1) % thin == 0``,
    the same samples as ``emcee``'s ``get_chain(discard=burn_in, thin=thin)``. The kept
    samples are the outputs of the outer scan (written in place, once each) rather than a
    buffer carried through every step, which XLA copied at each step (0.5 ms per step at
    250 walkers x 51 parameters x 1200 kept samples). Step ``i`` uses the key
    ``fold_in(key, i)`` either way, so the chain is the same.
    """
    W = p0.shape[0]
    n_keep = (n_steps - burn_in) // thin
    lp0 = logpost(p0, data)

    def step(carry, i):
        pos, lp, acc, out = carry
        pos, lp, a, o = _stretch_step(jax.random.fold_in(key, i), pos, lp, logpost, data)
        return (pos, lp, acc + a, out + o), None

    carry = (p0, lp0, jnp.zeros(W, jnp.int32), jnp.zeros((), jnp.int32))
    carry, _ = lax.scan(step, carry, jnp.arange(burn_in))

    def block(carry, j):  # thin steps; the last one is kept
        carry, _ = lax.scan(step, carry, burn_in + j * thin + jnp.arange(thin))
        return carry, (carry[0], carry[1])

    carry, (buf, lbuf) = lax.scan(block, carry, jnp.arange(n_keep))
    # steps after the last kept one still count in the acceptance and outside tallies
    (_, _, acc, out), _ = lax.scan(step, carry, jnp.arange(burn_in + n_keep * thin, n_steps))
    return buf, lbuf, acc, out


def sample_jax(logpost, data, p0: np.ndarray, n_steps: int, burn_in: int, thin: int,
               seed: np.random.SeedSequence) -> ChainResult:
    """Device-resident backend: the stretch-move chain as one compiled :func:`jax.lax.scan`.

    Same arguments and result as :func:`sample_emcee`; ``seed`` gives the JAX key.
    """
    t0 = time.perf_counter()
    key = jax.random.wrap_key_data(jnp.asarray(seed.generate_state(2, dtype=np.uint32)),
                                   impl="threefry2x32")
    if p0.shape[0] % 2:
        raise MethodInputError(f"methods.mcmc_walkers: the jax backend needs an even number, got {p0.shape[0]}")
    samples, lps, acc, outside = _jax_chain(key, jnp.asarray(p0), data, logpost,
                                            int(n_steps), int(burn_in), int(thin))
    samples = np.asarray(samples)
    return ChainResult(samples, np.asarray(lps), np.asarray(acc) / n_steps, int(outside),
                       time.perf_counter() - t0)


SAMPLERS = {"emcee": sample_emcee, "jax": sample_jax}
