"""torch.hub entrypoints of bioplausible-zoo: one per model family.

    model = torch.hub.load("bioplausible-zoo/bioplausible-zoo", "bp_mlp", weights="mnist")
    print(torch.hub.help("bioplausible-zoo/bioplausible-zoo", "bp_mlp"))
"""
from zoo.hub_entrypoints import make_entrypoint as _make_entrypoint

dependencies = ["torch", "safetensors", "numpy", "tqdm", "filelock"]  # what importing this file needs

bp_mlp = _make_entrypoint("bp_mlp")
bp_lenet = _make_entrypoint("bp_lenet")
fa_mlp = _make_entrypoint("fa_mlp")
fa_lenet = _make_entrypoint("fa_lenet")
usf_mlp = _make_entrypoint("usf_mlp")
usf_lenet = _make_entrypoint("usf_lenet")
brsf_lenet = _make_entrypoint("brsf_lenet")
frsf_lenet = _make_entrypoint("frsf_lenet")
dfa_mlp = _make_entrypoint("dfa_mlp")
dfa_lenet = _make_entrypoint("dfa_lenet")
drtp_mlp = _make_entrypoint("drtp_mlp")
dtp_mlp = _make_entrypoint("dtp_mlp")
krotov_mlp = _make_entrypoint("krotov_mlp")
krotov_fc = _make_entrypoint("krotov_fc")
krotov_fa = _make_entrypoint("krotov_fa")
semihebb_mlp = _make_entrypoint("semihebb_mlp")
