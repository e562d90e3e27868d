"""bioplausible-zoo: pretrained checkpoints of biologically plausible learning rules.

    import zoo
    zoo.list_models()                      # ["bp_mlp.mnist", ...]
    model = zoo.load("bp_mlp.mnist")       # eval mode, CPU, hash-checked
    x = zoo.get_weights("bp_mlp.mnist").transforms()(uint8_images)
"""
from zoo.api import Weights, create_model, get_weights, list_models, load
from zoo.hub_layout import export_folder, from_hub

__all__ = ["Weights", "create_model", "export_folder", "from_hub", "get_weights", "list_models", "load"]
