"""Quality beside speed: do two engines with the same weights agree, and what does a setting cost
in perplexity?

``probe`` runs a fixed greedy probe and the perplexity of a shipped text on a started engine;
``agreement`` compares the probes of two backends of one session; ``perplexity`` turns
log-probabilities into the number a result carries. Nothing here imports an engine.
"""
