"""Data helpers: synthetic default data (``neurorvq.data.synthetic``) shared by datamodules, demos and tests."""
