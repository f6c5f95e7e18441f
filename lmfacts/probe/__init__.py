"""The streaming probe: one forward pass per batch feeds every activation claim.

Heavy (imports torch); imported only when a claim first needs activations.
"""
