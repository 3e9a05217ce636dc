"""The six decontamination methods of Berlfein+24 behind one interface and a registry."""

from hpcsys.methods.base import MapData, MethodDiagnostics, MethodResult

__all__ = ["MapData", "MethodDiagnostics", "MethodResult"]
