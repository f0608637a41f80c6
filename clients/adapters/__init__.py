"""Reward adapters for external trainers: TRL, verl, EasyR1, OpenRLHF.

Each adapter turns its trainer's reward-call shape into ``POST /v1/score`` requests and back.
All share :class:`~clients.adapters.common.RemoteReward`: a per-call deadline with an explicit
fallback reward, and a ``prl_fallback`` flag in the logged extras whenever it was used.
"""
