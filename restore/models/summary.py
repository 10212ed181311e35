"""Parameter and MAC counts of the restoration networks, at a stated input size.

MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products;
MACs = FLOPs / 2), counted on the ``meta`` device so nothing is computed. Normalisations,
activations and element-wise ops are not counted (the usual convention of the papers), nor FFTs
(``conv_impl="fft"`` under-reports). Re-parameterisable networks are also counted in deploy form.

Command line (composes ``configs/model/net/<name>.yaml``)::

    python -m restore.models.summary model/net=unireplknet_tiny [input_size=256] [width=32 …]
    python -m restore.models.summary --all [input_size=256]   # every net config (docs/methods/backbones.md)

``input_size`` is a side (``256``), ``HxW`` (``256x384``) or a full ``[B,C,H,W]``; other ``key=value``
arguments override the net config.
"""

from __future__ import annotations

import copy
import sys
from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from restore.models.factory import create_model, list_architectures
from restore.models.reparam import is_deployed, is_reparameterizable, reparameterize

__all__ = ["count_params", "count_macs", "summarize", "summarize_config", "main"]


def count_params(net: nn.Module) -> int:
    """Number of parameters (``sum(p.numel())``; buffers such as BN statistics excluded)."""
    return sum(p.numel() for p in net.parameters())


def count_macs(net: nn.Module, input_size: Sequence[int] = (1, 3, 256, 256)) -> int:
    """Multiply-accumulates of one forward pass at ``input_size`` (B, C, H, W), eval mode, on ``meta``."""
    model = copy.deepcopy(net).to("meta").eval()
    x = torch.empty(tuple(input_size), device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def summarize(net: nn.Module, input_size: Sequence[int] = (1, 3, 256, 256)) -> dict:
    """Counts for one network.

    Returns:
        ``{"input_size", "params", "macs", "gmacs"}``, plus ``"params_deploy"``, ``"macs_deploy"``,
        ``"gmacs_deploy"`` when the network is re-parameterisable and not yet in deploy form
        (counted on a re-parameterised copy; ``net`` is left as it was).
    """
    input_size = tuple(int(s) for s in input_size)
    out = {"input_size": input_size, "params": count_params(net)}
    out["macs"] = count_macs(net, input_size)
    out["gmacs"] = out["macs"] / 1e9
    if is_reparameterizable(net) and not is_deployed(net):
        deployed = reparameterize(copy.deepcopy(net))
        out["params_deploy"] = count_params(deployed)
        out["macs_deploy"] = count_macs(deployed, input_size)
        out["gmacs_deploy"] = out["macs_deploy"] / 1e9
    return out


def summarize_config(name: str, input_size: Sequence[int] = (1, 3, 256, 256), overrides: Sequence[str] = ()) -> dict:
    """Build the architecture ``name`` (:func:`restore.create_model`, with ``key=value`` ``overrides`` such as
    ``width=8`` or ``block.conv_impl=fft``) and :func:`summarize` it."""
    from omegaconf import OmegaConf

    settings = OmegaConf.to_container(OmegaConf.from_dotlist(list(overrides)))
    with torch.device("meta"):  # build without allocating or initialising weights
        net = create_model(name, **settings)
    in_ch = getattr(net, "in_channels", input_size[1])
    return {"name": name, **summarize(net, (input_size[0], in_ch, *input_size[2:]))}


def _parse_input_size(text: str) -> tuple[int, int, int, int]:
    text = text.strip().strip("[]()")
    parts = [int(p) for p in text.replace("x", ",").split(",") if p.strip()]
    if len(parts) == 1:
        return (1, 3, parts[0], parts[0])
    if len(parts) == 2:
        return (1, 3, *parts)
    if len(parts) == 4:
        return tuple(parts)  # type: ignore[return-value]
    raise ValueError(f"input_size must be S, HxW or [B,C,H,W], got {text!r}")


def _fmt_params(n: int | None) -> str:
    return "—" if n is None else f"{n / 1e6:.3f} M"


def _fmt_gmacs(g: float | None) -> str:
    return "—" if g is None else f"{g:.2f}"


def print_table(rows: list[dict]) -> None:
    """A rich table: params (training / deploy form) and GMACs per network."""
    from rich.console import Console
    from rich.table import Table

    size = rows[0]["input_size"] if rows else ()
    table = Table(title=f"Networks at input {'×'.join(map(str, size))} (MACs = FLOPs/2, convs and matmuls)")
    for col in ("net", "params", "params (deploy)", "GMACs", "GMACs (deploy)"):
        table.add_column(col, justify="left" if col == "net" else "right", no_wrap=True)
    for r in rows:
        table.add_row(r["name"], _fmt_params(r["params"]), _fmt_params(r.get("params_deploy")),
                      _fmt_gmacs(r["gmacs"]), _fmt_gmacs(r.get("gmacs_deploy")))
    Console().print(table)


def main(argv: Sequence[str] | None = None) -> list[dict]:
    """CLI entry point (see the module docstring)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return []
    names, overrides, input_size, all_nets = [], [], (1, 3, 256, 256), False
    for a in args:
        if a in ("--all", "all"):
            all_nets = True
        elif a.startswith(("model/net=", "net=", "model.net=")):
            names.append(a.split("=", 1)[1])
        elif a.startswith("input_size="):
            input_size = _parse_input_size(a.split("=", 1)[1])
        elif "=" in a:
            overrides.append(a)
        else:
            names.append(a)
    if all_nets:
        names = list_architectures()
    if not names:
        raise SystemExit("give model/net=<name> (a configs/model/net/*.yaml) or --all; see --help")
    rows = [summarize_config(n, input_size, overrides) for n in names]
    print_table(rows)
    return rows


if __name__ == "__main__":
    main()
