"""trtexec's spellings, parsed without TensorRT: shape lists and memory pool sizes.

``--minShapes=point_coords:1x1x2,point_labels:1x1`` (names may be quoted, ``'name':1x2``),
``--memPoolSize=workspace:4096M`` (suffixes B, K, M, G as powers of 1024; none means MiB, as
in trtexec).
"""

from __future__ import annotations

import re

from nanosam2.errors import NanoSam2Error

_SHAPE_ITEM = re.compile(r"^\s*(?:'(?P<quoted>[^']+)'|(?P<name>[^:']+)):(?P<dims>[^,]*)$")
_UNITS = {"B": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
POOLS = {"workspace": "WORKSPACE", "dlaSRAM": "DLA_MANAGED_SRAM", "dlaLocalDRAM": "DLA_LOCAL_DRAM",
         "dlaGlobalDRAM": "DLA_GLOBAL_DRAM", "tacticSharedMem": "TACTIC_SHARED_MEMORY"}


def _split_items(text: str) -> list[str]:
    items, current, quoted = [], "", False
    for char in text:
        if char == "'":
            quoted = not quoted
        if char == "," and not quoted:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    return items


def parse_shapes(text: str, flag: str = "shapes") -> dict[str, tuple[int, ...]]:
    """``name:1x3x1024x1024,other:1`` -> {name: (1, 3, 1024, 1024), other: (1,)}."""
    shapes: dict[str, tuple[int, ...]] = {}
    if not text.strip():
        raise NanoSam2Error(f"--{flag} is empty; expected name:DxDxD[,name:D...]")
    for item in _split_items(text):
        match = _SHAPE_ITEM.match(item)
        if not match:
            raise NanoSam2Error(f"--{flag}: cannot parse {item.strip()!r}; expected name:DxDxD")
        name = (match.group("quoted") or match.group("name")).strip()
        try:
            dims = tuple(int(d) for d in match.group("dims").strip().split("x"))
        except ValueError:
            raise NanoSam2Error(f"--{flag}: bad dimensions {match.group('dims').strip()!r} for {name}; "
                                "expected e.g. 1x3x1024x1024") from None
        if any(d < 0 for d in dims):
            raise NanoSam2Error(f"--{flag}: negative dimension for {name}")
        if name in shapes:
            raise NanoSam2Error(f"--{flag}: {name} given twice")
        shapes[name] = dims
    return shapes


def parse_memory_pools(text: str) -> dict[str, int]:
    """``workspace:4096M,dlaSRAM:1M`` -> {"WORKSPACE": bytes, "DLA_MANAGED_SRAM": bytes}."""
    pools = {}
    for item in text.split(","):
        name, _, size = item.partition(":")
        name = name.strip()
        if name not in POOLS or not size.strip():
            raise NanoSam2Error(f"--memPoolSize: cannot parse {item!r}; expected POOL:SIZE[B|K|M|G] with POOL in "
                                f"{', '.join(POOLS)}")
        size = size.strip()
        unit = size[-1].upper() if size[-1].isalpha() else "M"
        number = size[:-1] if size[-1].isalpha() else size
        if unit not in _UNITS:
            raise NanoSam2Error(f"--memPoolSize: unknown unit in {size!r}; use B, K, M or G")
        try:
            value = float(number)
        except ValueError:
            raise NanoSam2Error(f"--memPoolSize: {size!r} is not a size") from None
        pools[POOLS[name]] = int(value * _UNITS[unit])
    return pools
