"""Contract rule kinds, one module each; every module defines ``KIND`` (see ``..registry``).

Adding a kind is adding a module here (and its test): the registry finds it by discovery.
"""
