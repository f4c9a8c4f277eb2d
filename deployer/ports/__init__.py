"""The ports: what the use cases need from the outside world, in domain terms, one module per
outside system: ``storage`` (state documents, bundles, the request queue), ``images`` (the
registry and its builds), ``code`` (the code store), ``agents`` (the agent runtime),
``orchestrator`` (Prefect), ``secrets`` (Key Vault) and ``notifications``. ``deployer.services``
gathers them, with the clock, into what a use case receives.

Adapters in ``deployer/adapters/`` implement them (Azure Storage, ACR, ACI, Prefect, local
processes); fakes in ``tests/fakes/`` implement them for unit tests and are kept honest by
contract tests that run the same cases against both. This package imports nothing: each use
case imports the port modules it needs.
"""
