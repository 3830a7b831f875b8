"""SA-1B-shaped folders made on the fly: chunk folders of sa_N.jpg, some with SA-1B JSON."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from .conftest import make_test_image


def make_sa1b(root: Path, per_chunk: int = 4, chunks: int = 2, corrupt: bool = True) -> Path:
    for index in range(per_chunk * chunks):
        folder = root / f"sa_{index % chunks:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(make_test_image(200 + 10 * index, 300, seed=index)).save(folder / f"sa_{index}.jpg", quality=90)
        if index % 2 == 0:
            annotations = [{"bbox": [10, 20, 100, 80], "point_coords": [[50, 60]]},
                           {"bbox": [150, 40, 60, 90], "point_coords": [[170, 80]]}]
            (folder / f"sa_{index}.json").write_text(json.dumps({"annotations": annotations}))
    if corrupt:
        (root / "sa_000001" / "sa_999.jpg").write_bytes(b"\xff\xd8\xff this is not a JPEG")
    return root
