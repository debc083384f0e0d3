"""Adapters that let other trainers and servers use secreason's rewards and contract.

Every adapter here is a thin calling convention around :mod:`.scoring`, which in turn is
:meth:`secreason.tasks.base.Task.judge`: verl, OpenRLHF (in process or over HTTP) and
TRL (``secreason.train.rewards``) reward the same completion with the same number.
"""
