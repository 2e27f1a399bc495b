"""Registered biosignal modalities (importable as ``neurorvq.modalities``)."""
