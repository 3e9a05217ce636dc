"""Measurements on pixel maps: angular two-point functions with TreeCorr."""
