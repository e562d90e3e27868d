"""torch.hub entrypoints of bioplausible-zoo: one per model family.

    model = torch.hub.load("bioplausible-zoo/bioplausible-zoo", "bp_mlp", weights="mnist")
    print(torch.hub.help("bioplausible-zoo/bioplausible-zoo", "bp_mlp"))
"""
from zoo.hub_entrypoints import make_entrypoint as _make_entrypoint

dependencies = ["torch", "safetensors"]

bp_mlp = _make_entrypoint("bp_mlp")
