"""Public datasets as LightningDataModules (importable as ``neurorvq.datamodules``)."""
