"""torch.hub entrypoints of bioplausible-zoo: one per model family, generated from the registry.

    model = torch.hub.load("bioplausible-zoo/bioplausible-zoo", "bp_mlp", weights="mnist")
    print(torch.hub.list("bioplausible-zoo/bioplausible-zoo"))
    print(torch.hub.help("bioplausible-zoo/bioplausible-zoo", "bp_mlp"))
"""
from zoo.hub_entrypoints import entrypoints as _entrypoints

dependencies = ["torch", "safetensors", "numpy", "tqdm", "filelock"]  # what importing this file needs

globals().update(_entrypoints())
