"""Federated rounds on Flower: a coordinator's SuperLink, members' SuperNodes, LoRA updates under SecAgg+."""
