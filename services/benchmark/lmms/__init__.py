"""Transfer evaluation through lmms-eval (``prl bench lmms``, docs/evaluation.md).

``launch`` finds lmms-eval's venv and runs ``worker`` there; ``results`` maps what lmms-eval
returns into runs of the SQL store; ``env`` repairs and checks the venv (``make lmms-env``).
"""
