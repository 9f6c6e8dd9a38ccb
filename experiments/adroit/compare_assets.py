"""Compare D4RL's Adroit model files with Gymnasium-Robotics' (the world both simulate).

Usage: ``python experiments/adroit/compare_assets.py D4RL_CHECKOUT`` (a checkout of
``Farama-Foundation/D4RL``). Prints, per task, the lines that differ between D4RL's
``hand_manipulation_suite/assets/DAPG_<task>.xml`` (and ``DAPG_Adroit.xml``, ``DAPG_assets.xml``) and the
installed ``gymnasium_robotics/envs/assets/adroit_hand/adroit_<task>.xml`` (``adroit_model.xml``,
``adroit_assets.xml``), whitespace ignored, and how many meshes are byte-identical.
"""

from __future__ import annotations

import difflib
import hashlib
import sys
from pathlib import Path

import gymnasium_robotics


def main(d4rl: Path) -> None:
    ours = Path(gymnasium_robotics.__file__).parent / "envs" / "assets" / "adroit_hand"
    theirs = d4rl / "d4rl" / "hand_manipulation_suite"
    pairs = [(f"DAPG_{t}.xml", f"adroit_{t}.xml") for t in ("door", "pen", "hammer", "relocate")]
    pairs += [("DAPG_Adroit.xml", "adroit_model.xml"), ("DAPG_assets.xml", "adroit_assets.xml")]
    for a, b in pairs:
        old = [" ".join(x.split()) for x in (theirs / "assets" / a).read_text().splitlines()]
        new = [" ".join(x.split()) for x in (ours / b).read_text().splitlines()]
        diff = [d for d in difflib.unified_diff(old, new, lineterm="", n=0) if d[:1] in "+-" and d[:3] not in "+++---"]
        print(f"{a} vs {b}: {len(diff)} differing lines")
        for d in diff:
            print("   ", d)
    meshes = sorted((ours / "resources" / "meshes").iterdir())
    same = sum(
        hashlib.sha256(m.read_bytes()).digest()
        == hashlib.sha256((theirs / "Adroit" / "resources" / "meshes" / m.name).read_bytes()).digest()
        for m in meshes if (theirs / "Adroit" / "resources" / "meshes" / m.name).is_file()
    )
    print(f"meshes: {same} of {len(meshes)} byte-identical")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
