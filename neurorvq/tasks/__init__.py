"""LightningModules: tokenizer training (and, later, FM pretraining and fine-tuning)."""
