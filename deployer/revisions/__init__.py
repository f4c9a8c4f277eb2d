"""A revision as the rotation and the use cases read it: its bundle loaded from storage and checked
against the digests it was accepted with (``source``), and the Key Vault references of its
``.env`` pinned to versions and resolved (``secret_pins``). Below both ``pipeline`` and
``rotation``: neither imports the other.
"""
