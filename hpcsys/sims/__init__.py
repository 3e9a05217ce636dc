"""Mock skies: footprints, target spectra, lognormal fields, templates and contamination."""
