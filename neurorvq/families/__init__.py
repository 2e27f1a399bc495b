"""Tokenizer families: the architecture a checkpoint fixes, apart from the signal a modality describes.

A family (NeuroRVQ today; BrainRVQ and LaBraM's VQ-NSP next) owns its architecture numbers in a frozen config
(:class:`~neurorvq.families.neurorvq.NeuroRVQConfig`) that a modality binds to its signal (rate, patch length,
vocabulary). The family registry and the tokenizer protocol build on these configs (``docs/design.md``).
"""
