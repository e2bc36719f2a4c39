"""satimp: LLM unlearning by loss reweighting (Yang et al., "Exploring Criteria of Loss
Reweighting to Enhance LLM Unlearning", ICML 2025), with exact and fast evaluation."""

__version__ = "0.1.0"
