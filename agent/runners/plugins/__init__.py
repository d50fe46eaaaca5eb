"""Runner plugins, one module per backend: every module in this folder is a plugin.

``agent.runners`` imports each of them once (``available_runners``); a module whose SDK
or execution provider is missing raises ImportError and is skipped. Helpers shared by
plugins live in ``agent.runners``, never here.
"""
