"""Measurements on pixel maps: angular two-point functions with TreeCorr
(:mod:`~hpcsys.measure.twopoint`) and the sandwich covariances of pixel
estimators on a correlated sky (:mod:`~hpcsys.measure.sandwich`)."""
