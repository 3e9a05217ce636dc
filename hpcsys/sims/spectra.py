"""Angular power spectra: the KiDS-like galaxy target and the template families.

Target galaxy spectrum
----------------------
See docs/science/conventions.rst.

The true overdensity of every mock is a lognormal field whose angular power
spectrum is the linear-bias galaxy clustering spectrum of a KiDS-like
photometric sample. The spectrum is computed once with CAMB and shipped as
``hpcsys/data/kids_cl.txt`` so that runs need neither CAMB nor a network
connection. Regenerate it with::

    python -m hpcsys.sims.spectra --write

The table is for unit linear bias; :func:`target_cl` multiplies it by
``sky.galaxy_bias ** 2``. Choices (written into the table header as well):

* cosmology: Planck 2018 TT,TE,EE+lowE+lensing flat LCDM (H0 = 67.36,
  Omega_b h^2 = 0.02237, Omega_c h^2 = 0.1200, n_s = 0.9649,
  A_s = 2.1e-9, one massive neutrino of 0.06 eV), non-linear matter power
  from HMcode-2020 (CAMB's default halofit version);
* n(z): a Smail distribution ``n(z) ∝ z^2 exp[-(z/z0)^1.5]`` with
  ``z0 = 0.465`` (mean redshift 0.70, close to the KiDS-1000 gold sample
  over its five tomographic bins, 0.1 < z_B <= 1.2), on 0 < z < 3;
* galaxy counts from density only (no redshift-space distortions, no
  magnification), Limber approximation switched on by CAMB where accurate;
* multipoles 0 <= l <= 6143 (3 x NSIDE - 1 for NSIDE 2048), C_0 = C_1 = 0.

Template families
-----------------
See docs/science/conventions.rst.

``exp``: exp(-l/500), ``gauss``: exp(-(l/250)^2), ``power2``: (l+1)^-2,
``power1``: (l+1)^-1, ``white``: constant; each normalised by
:func:`template_cl` to unit pixel variance, sum_l (2l+1)/(4 pi) C_l = 1, with
the monopole and dipole removed.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

import numpy as np

from hpcsys.config import TEMPLATE_FAMILIES, ConfigError

__all__ = [
    "KIDS_TABLE",
    "SMAIL_Z0",
    "compute_kids_cl",
    "large_scale_fraction",
    "legendre_w",
    "load_cl_table",
    "target_cl",
    "template_cl",
]

#: File name of the shipped KiDS-like unit-bias C_l table in :mod:`hpcsys.data`.
KIDS_TABLE = "kids_cl.txt"
#: Scale of the Smail n(z) of the KiDS-like sample (mean redshift 0.70).
SMAIL_Z0 = 0.465
_LMAX_TABLE = 6143


def load_cl_table(spectrum: str = "kids") -> tuple[np.ndarray, np.ndarray]:
    """Read a two-column ``(ell, C_ell)`` table.

    Parameters
    ----------
    spectrum : str
        ``"kids"`` for the shipped table, else a path to a text file.

    Returns
    -------
    ell : ndarray of int
    cl : ndarray of float

    Raises
    ------
    ConfigError
        Naming ``sky.spectrum`` if the file cannot be read or is malformed.
    """
    try:
        if spectrum == "kids":
            with resources.files("hpcsys.data").joinpath(KIDS_TABLE).open("r") as fh:
                data = np.loadtxt(fh, ndmin=2)
        else:
            data = np.loadtxt(spectrum, ndmin=2)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"sky.spectrum: cannot read C_l table {spectrum!r} ({exc})") from None
    if data.shape[1] < 2:
        raise ConfigError(f"sky.spectrum: {spectrum!r} must have two columns (ell, C_ell)")
    ell = data[:, 0]
    cl = data[:, 1]
    if not np.allclose(ell, np.round(ell)) or np.any(np.diff(ell) <= 0) or ell[0] < 0:
        raise ConfigError(f"sky.spectrum: {spectrum!r}: ell must be increasing integers >= 0")
    if not np.all(np.isfinite(cl)) or np.any(cl < 0):
        raise ConfigError(f"sky.spectrum: {spectrum!r}: C_ell must be finite and >= 0")
    return ell.astype(int), cl


def target_cl(spectrum: str, bias: float, lmax: int) -> np.ndarray:
    """Galaxy C_l for ``0 <= l <= lmax``: the table times ``bias**2``.

    Multipoles missing from the table below its first entry are zero;
    monopole and dipole are set to zero.

    Raises
    ------
    ConfigError
        If the table stops before ``lmax`` (naming ``sky.spectrum``).
    """
    ell, cl = load_cl_table(spectrum)
    if ell[-1] < lmax:
        raise ConfigError(
            f"sky.spectrum: table {spectrum!r} ends at l = {ell[-1]}, but l up to {lmax} "
            f"(3 x sky.nside - 1) is needed"
        )
    out = np.zeros(lmax + 1)
    keep = ell <= lmax
    out[ell[keep]] = cl[keep]
    out[:2] = 0.0
    return bias**2 * out


def template_cl(family: str, lmax: int, ell_scale: float = 1.0) -> np.ndarray:
    """Unit-variance angular power spectrum of a template family.

    Parameters
    ----------
    family : str
        One of ``exp, gauss, power2, power1, white`` (docs/science/models.rst).
    lmax : int
    ell_scale : float
        Multiplies the characteristic multipoles of the ``exp`` (500) and
        ``gauss`` (250) families (``templates.ell_scale``); the power laws and
        ``white`` have none.

    Returns
    -------
    ndarray, shape (lmax + 1,)
        ``C_l`` with ``C_0 = C_1 = 0`` and ``sum_l (2l+1)/(4 pi) C_l = 1``.
    """
    if not ell_scale > 0:
        raise ConfigError(f"templates.ell_scale: must be > 0, got {ell_scale}")
    ell = np.arange(lmax + 1, dtype=float)
    if family == "exp":
        cl = np.exp(-ell / (500.0 * ell_scale))
    elif family == "gauss":
        cl = np.exp(-((ell / (250.0 * ell_scale)) ** 2))
    elif family == "power2":
        cl = (ell + 1.0) ** -2
    elif family == "power1":
        cl = (ell + 1.0) ** -1
    elif family == "white":
        cl = np.ones_like(ell)
    else:
        raise ConfigError(
            f"templates.families: unknown family {family!r}; choose from "
            f"{', '.join(TEMPLATE_FAMILIES)}"
        )
    cl[:2] = 0.0
    return cl / np.sum((2 * ell + 1) / (4 * np.pi) * cl)


def large_scale_fraction(family: str, nside: int, ell_scale: float = 1.0) -> float:
    """Fraction of a family's pixel variance at multipoles ``l < 2 NSIDE``.

    The maps are band-limited at ``lmax = 3 NSIDE - 1``, so a ``white``
    family has ``(4 NSIDE^2 - 4) / (9 NSIDE^2 - 4)``, about 4/9, of its variance
    there (``C_0 = C_1 = 0``); a family whose fraction is close to 4/9 is, at
    that NSIDE, indistinguishable from pixel noise (at NSIDE 128, ``exp`` with
    ``ell_scale = 1`` has 0.52).

    Parameters
    ----------
    family : str
    nside : int
    ell_scale : float
        As in :func:`template_cl`.
    """
    lmax = 3 * nside - 1
    ell = np.arange(lmax + 1)
    var = (2 * ell + 1) / (4 * np.pi) * template_cl(family, lmax, ell_scale)
    return float(var[: 2 * nside].sum() / var.sum())


def legendre_w(cl: np.ndarray, theta_rad: np.ndarray) -> np.ndarray:
    """Correlation function ``w(theta) = sum_l (2l+1)/(4 pi) C_l P_l(cos theta)``."""
    cl = np.asarray(cl, dtype=float)
    ell = np.arange(cl.shape[0])
    return np.polynomial.legendre.legval(np.cos(theta_rad), (2 * ell + 1) / (4 * np.pi) * cl)


def compute_kids_cl(lmax: int = _LMAX_TABLE) -> tuple[np.ndarray, np.ndarray]:
    """Compute the unit-bias KiDS-like galaxy C_l with CAMB (optional dependency).

    See the module docstring for the cosmology and n(z).

    Returns
    -------
    ell : ndarray, shape (lmax + 1,)
    cl : ndarray, shape (lmax + 1,)
        Dimensionless C_l of the projected galaxy overdensity for b = 1.
    """
    try:
        import camb
        from camb.sources import SplinedSourceWindow
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "computing the C_l table needs CAMB: pip install 'hpcsys[spectra]'"
        ) from exc

    pars = camb.set_params(
        H0=67.36, ombh2=0.02237, omch2=0.1200, mnu=0.06, omk=0.0, tau=0.0544,
        As=2.1e-9, ns=0.9649, halofit_version="mead2020", lmax=lmax,
    )
    pars.Want_CMB = False
    pars.NonLinear = camb.model.NonLinear_both
    z = np.linspace(0.0, 3.0, 601)
    nz = z**2 * np.exp(-((z / SMAIL_Z0) ** 1.5))
    nz /= np.trapezoid(nz, z)
    pars.SourceWindows = [SplinedSourceWindow(source_type="counts", bias=1.0, z=z, W=nz)]
    pars.SourceTerms.counts_redshift = False
    pars.SourceTerms.counts_lensing = False
    pars.SourceTerms.counts_velocity = False
    pars.SourceTerms.counts_radial = False
    pars.SourceTerms.counts_timedelay = False
    pars.SourceTerms.counts_ISW = False
    pars.SourceTerms.counts_potential = False
    pars.SourceTerms.limber_windows = True
    results = camb.get_results(pars)
    dl = results.get_source_cls_dict(lmax=lmax, raw_cl=True)["W1xW1"]
    ell = np.arange(lmax + 1)
    cl = np.asarray(dl[: lmax + 1], dtype=float)
    cl[:2] = 0.0
    return ell, cl


def _write_table(path: Path, lmax: int) -> None:
    import camb

    ell, cl = compute_kids_cl(lmax)
    header = (
        "KiDS-like photometric galaxy sample, unit linear bias; produced by\n"
        "'python -m hpcsys.sims.spectra --write' (hpcsys/sims/spectra.py) with "
        f"CAMB {camb.__version__}.\n"
        "Planck 2018 flat LCDM (H0=67.36, ombh2=0.02237, omch2=0.1200, mnu=0.06 eV, "
        "As=2.1e-9, ns=0.9649), HMcode-2020 non-linear P(k).\n"
        f"n(z) ~ z^2 exp(-(z/{SMAIL_Z0})^1.5) on 0<z<3 (mean z = 0.70); density term only.\n"
        "columns: ell  C_ell"
    )
    np.savetxt(path, np.column_stack([ell, cl]), fmt=["%d", "%.8e"], header=header)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m hpcsys.sims.spectra --write [--lmax L] [--out PATH]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="compute with CAMB and write")
    parser.add_argument("--lmax", type=int, default=_LMAX_TABLE)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent.parent / "data" / KIDS_TABLE
    )
    args = parser.parse_args(argv)
    if not args.write:
        parser.print_help()
        return
    _write_table(args.out, args.lmax)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
