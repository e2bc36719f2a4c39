"""satimp: LLM unlearning by loss reweighting (Yang et al., "Exploring Criteria of Loss
Reweighting to Enhance LLM Unlearning", ICML 2025), with exact and fast evaluation."""

__version__ = "0.2.0"  # part of every model-cache key: bump when training data or encoding change
