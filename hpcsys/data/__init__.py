"""Shipped data tables (see hpcsys.sims.spectra)."""
